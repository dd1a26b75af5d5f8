#!/usr/bin/env node
// A workerpool worker written in Node.js with the @workerpool/worker library (sdk/node).
//
// It serves text_processing: word counts, the most frequent words and a checksum of the text,
// reporting progress per chunk. A lookup table (a stop-word list) is built once per process in
// setup and reused by every task.
//
// Install the library (`npm install ./sdk/node`, from the repository root) and configure a
// type that runs this file (config TOML, CONTRACT section 3):
//
//     [types.text_processing]
//     command = ["node", "examples/node_worker.mjs"]
//
// A task:
//
//     {"type": "text_processing", "data": {"text": "the quick brown fox", "top": 3}}
//
// answers {"words", "unique", "top", "sha256", "loads", "pid"}.
import { createHash } from "node:crypto";

import { Fatal, Worker } from "@workerpool/worker";

const worker = new Worker();
const state = { loads: 0, stop: null };

worker.setup(async () => {
  state.stop = new Set("a an and are as at be by for from in is it of on or that the to with".split(" "));
  state.loads += 1;
  console.log(`stop-word list loaded (${state.stop.size} words)`); // goes to stderr
});

worker.teardown(() => {
  console.log("text worker exiting");
});

worker.task("text_processing", async (ctx) => {
  const data = ctx.data && typeof ctx.data === "object" ? ctx.data : {};
  if (typeof data.text !== "string") throw new Fatal("data.text must be a string");
  const top = data.top ?? 5;
  if (!Number.isInteger(top) || top < 1 || top > 100) throw new Fatal("data.top must be an integer from 1 to 100");
  const words = data.text.toLowerCase().match(/[\p{L}\p{N}']+/gu) ?? [];
  const counts = new Map();
  const chunk = 1000;
  for (let start = 0; start < words.length || start === 0; start += chunk) {
    for (const word of words.slice(start, start + chunk)) {
      if (!state.stop.has(word)) counts.set(word, (counts.get(word) ?? 0) + 1);
    }
    const done = Math.min(words.length, start + chunk);
    ctx.progress(words.length ? (100 * done) / words.length : 100, `counted ${done}/${words.length} words`);
    // Yield to the event loop between chunks, so that pings are answered during long texts.
    await new Promise((resolve) => setImmediate(resolve));
  }
  const ranked = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)).slice(0, top);
  return {
    words: words.length,
    unique: counts.size,
    top: ranked.map(([word, count]) => ({ word, count })),
    sha256: createHash("sha256").update(data.text).digest("hex"),
    loads: state.loads,
    pid: process.pid,
  };
});

worker.run();

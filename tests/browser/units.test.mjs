// The dashboard's pure functions, under `node --test` (run by tests/dashboard_units.rs).
import { test } from "node:test";
import assert from "node:assert/strict";

import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

// The page's files are ES modules named `.js` without a package.json saying so; copied as
// `.mjs`, any Node (18 on) loads them as such.
const source = new URL("../../src/api/dashboard/", import.meta.url);
const copies = mkdtempSync(join(tmpdir(), "wp-dashboard-"));
for (const file of readdirSync(source).filter((f) => f.endsWith(".js"))) {
  const text = readFileSync(new URL(file, source), "utf8").replace(/from "\.\/(\w+)\.js"/g, 'from "./$1.mjs"');
  writeFileSync(join(copies, file.replace(/\.js$/, ".mjs")), text);
}
const load = (name) => import(pathToFileURL(join(copies, `${name}.mjs`)).href);
const { parseBlock, final } = await load("api");
const { rates, whyBlocked, scaled, workerPage } = await load("overview");

test("an event block gives its name, data, id and retry", () => {
  assert.deepEqual(parseBlock('id: 2.1.50\nevent: progress\ndata: {"progress":50}'),
    { event: "progress", data: { progress: 50 }, id: "2.1.50", retry: null });
  assert.deepEqual(parseBlock("retry: 3000\n: a comment"), { event: "message", data: undefined, id: null, retry: 3000 });
  assert.deepEqual(parseBlock("data: a\ndata: b"), { event: "message", data: "a\nb", id: null, retry: null });
  assert.equal(parseBlock("retry: soon").retry, null, "a retry that is not a number is ignored");
  assert.equal(parseBlock("data:{\"x\":1}").data.x, 1, "the space after the colon is optional");
});

test("a stream stops for good on 204 and on client errors a retry cannot mend", () => {
  for (const s of [204, 400, 404, 405, 410]) assert.equal(final(s), true, String(s));
  for (const s of [200, 401, 408, 429, 500, 502, 503]) assert.equal(final(s), false, String(s));
});

test("rates come from the counts the page kept, over the time it watched", () => {
  const at = (s, finished, failed) => ({ at: s * 1000, byType: { a: { finished, failed } } });
  assert.deepEqual(rates([], "a"), { perMinute: null, errorRate: null });
  assert.deepEqual(rates([at(0, 0, 0), at(5, 10, 0)], "a"), { perMinute: null, errorRate: null }, "under 10 s");
  assert.deepEqual(rates([at(0, 100, 10), at(60, 160, 25)], "a"), { perMinute: 60, errorRate: 0.25 });
  assert.deepEqual(rates([at(0, 5, 1), at(120, 5, 1)], "a"), { perMinute: 0, errorRate: null });
  assert.deepEqual(rates([at(0, 5, 1), at(120, 5, 1)], "b"), { perMinute: null, errorRate: null }, "unknown type");
});

test("why a type cannot start joins every reason once", () => {
  assert.equal(whyBlocked("a", { cannot_start: false, start_blocked: null }, { unavailable_reason: null, gpu_wait: null }), null);
  assert.equal(whyBlocked("a", { cannot_start: true, start_blocked: "no GPU room" }, { unavailable_reason: null, gpu_wait: "no GPU room" }),
    "gave up starting workers; no GPU room");
  assert.equal(whyBlocked("a", { cannot_start: false, start_blocked: null }, null), null, "types not read yet");
});

test("a scale answer says when workers wait for room", () => {
  assert.equal(scaled({ workers: 2, started: 2, waiting: 0 }), null);
  assert.equal(scaled({ workers: 3, started: 1, waiting: 2, gpu_wait: "no GPU has 40960 MiB free" }),
    "3 workers; 2 wait for room (no GPU has 40960 MiB free)");
  assert.equal(scaled(null), null);
});

test("200 workers are shown a page of 50 at a time", () => {
  const workers = Array.from({ length: 200 }, (_, i) => ({ id: `t${i % 2}-${i}`, task_type: `t${i % 2}` }));
  const first = workerPage(workers, "", 0, 50);
  assert.equal(first.rows.length, 50);
  assert.deepEqual([first.offset, first.total, first.rows[0].id], [0, 200, "t0-0"]);
  const last = workerPage(workers, "", 150, 50);
  assert.deepEqual([last.rows.length, last.rows[49].id], [50, "t1-199"]);
  const one = workerPage(workers, "t1", 0, 50);
  assert.deepEqual([one.total, one.rows.every((w) => w.task_type === "t1")], [100, true]);
  // The list shrank under the page shown: its last page instead of an empty one.
  const shrunk = workerPage(workers.slice(0, 60), "", 150, 50);
  assert.deepEqual([shrunk.offset, shrunk.rows.length], [50, 10]);
  assert.deepEqual(workerPage([], "", 100, 50), { rows: [], offset: 0, total: 0 });
});

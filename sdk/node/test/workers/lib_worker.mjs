// A worker built on @workerpool/worker, for the tests: one handler per behaviour under test.
//
// Usage: node lib_worker.mjs LOGFILE  (setup and teardown append "setup PID" / "teardown PID").
import { appendFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";

import { Fatal, Retryable, Worker } from "../../src/index.js";

// `node --test sdk/node/test/` also runs every script under test/ as a test file, with no
// arguments: then there is nothing to serve.
if (!process.argv[2]) process.exit(0);

const LOG = process.argv[2];
const worker = new Worker();
const state = { setups: 0, tasks: 0 };

function note(what) {
  appendFileSync(LOG, `${what} ${process.pid}\n`);
}

function base(ctx) {
  state.tasks += 1;
  return { pid: process.pid, setups: state.setups, tasks: state.tasks, attempt: ctx.attempt };
}

worker.setup(async () => {
  await sleep(10);
  state.setups += 1;
  console.log("setup: this line goes to stderr");
  note("setup");
});

worker.teardown(() => note("teardown"));

worker.task("sdk_progress", async (ctx) => {
  const steps = ctx.data.steps ?? 4;
  for (let i = 1; i <= steps; i++) {
    await sleep(ctx.data.step_ms ?? 300);
    ctx.progress((100 * i) / steps, `step ${i}/${steps}`);
  }
  return { ...base(ctx), steps };
});

worker.task("sdk_fatal", (ctx) => {
  throw new Fatal(`bad input on attempt ${ctx.attempt}`);
});

worker.task("sdk_retry", async (ctx) => {
  throw new Retryable(`busy on attempt ${ctx.attempt}`);
});

worker.task("sdk_error", (ctx) => {
  throw new RangeError(`odd value on attempt ${ctx.attempt}`);
});

worker.task("sdk_print", (ctx) => {
  console.log("a stray console.log from the handler");
  console.log('{"id": "not-a-protocol-line"}');
  console.info("console.info too");
  process.stdout.write("no newline at the end");
  return { ...base(ctx), echoed: ctx.data };
});

worker.task("sdk_badresult", (ctx) => {
  if (ctx.data.ok) return base(ctx);
  return { pid: process.pid, value: 10n };
});

worker.task(["sdk_slow", "sdk_ping", "sdk_term", "sdk_setup"], async (ctx) => {
  await sleep(ctx.data.ms ?? 0);
  return base(ctx);
});

worker.run();

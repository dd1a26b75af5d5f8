// @workerpool/worker against the real server: `workerpool serve` (binary from WORKERPOOL_BIN)
// runs types whose command is a worker script built on the library; the tests drive it with the
// library's Client. A few tests also run a worker script directly over pipes, to see the exact
// protocol lines (pong order, exit codes). Every wait is bounded; every process is stopped.
//
// Run: WORKERPOOL_BIN=target/debug/workerpool node --test sdk/node/test/
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, symlinkSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";

import { Client, ClientError } from "../src/index.js";
import { BIN, Server, exited, tomlType } from "./server.mjs";

const HERE = dirname(fileURLToPath(import.meta.url));
const PACKAGE = resolve(HERE, "..");
const REPO = resolve(PACKAGE, "..", "..");
const WORKER = join(HERE, "workers", "lib_worker.mjs");
const FAILING_SETUP = join(HERE, "workers", "failing_setup.mjs");
const EXAMPLE = join(REPO, "examples", "node_worker.mjs");

async function waitFor(limitMs, cond, everyMs = 20) {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    const value = await cond();
    if (value) return value;
    await sleep(everyMs);
  }
  return cond();
}

function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 1).trim().split(/\s+/)[0] !== "Z";
  } catch {
    return false;
  }
}



/** A worker script run over pipes; its stdout lines are parsed and queued with their time. */
class Direct {
  constructor(script, args = [], options = {}) {
    this.proc = spawn(process.execPath, [script, ...args.map(String)], { stdio: ["pipe", "pipe", "pipe"], ...options });
    this.lines = [];
    this.waiters = [];
    this.stderr = "";
    this.proc.stderr.on("data", (chunk) => (this.stderr += chunk));
    this.proc.stdin.on("error", () => {});
    createInterface({ input: this.proc.stdout }).on("line", (raw) => {
      const item = { at: Date.now(), message: JSON.parse(raw) };
      const waiter = this.waiters.shift();
      if (waiter) waiter(item);
      else this.lines.push(item);
    });
  }

  send(message) {
    this.proc.stdin.write(JSON.stringify(message) + "\n");
  }

  read(limitMs = 10_000) {
    if (this.lines.length) return Promise.resolve(this.lines.shift());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error("no line from the worker; its stderr:\n" + this.stderr));
      }, limitMs);
      const waiter = (item) => {
        clearTimeout(timer);
        resolve(item);
      };
      this.waiters.push(waiter);
    });
  }

  async kill() {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill("SIGKILL");
      await exited(this.proc, 5_000);
    }
  }
}

function setupLines(path, pid) {
  try {
    return readFileSync(path, "utf8").split("\n").filter((l) => l.endsWith(` ${pid}`));
  } catch {
    return [];
  }
}

const T = { timeout: 60_000 };

describe("through the server", { skip: BIN ? false : "WORKERPOOL_BIN is not set (tests/sdk_node.rs sets it)" }, () => {
  let server;
  let dir;
  let setupLog;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "wp-sdk-node-run-"));
    setupLog = join(dir, "setup.log");
    // The example imports "@workerpool/worker": give it a node_modules that holds the package,
    // as `npm install sdk/node` would (a link to the package folder).
    const exampleDir = join(dir, "app");
    mkdirSync(join(exampleDir, "node_modules", "@workerpool"), { recursive: true });
    symlinkSync(PACKAGE, join(exampleDir, "node_modules", "@workerpool", "worker"), "dir");
    copyFileSync(EXAMPLE, join(exampleDir, "node_worker.mjs"));
    const cmd = [process.execPath, WORKER, setupLog];
    const types = [
      tomlType("sdk_progress", cmd),
      tomlType("sdk_fatal", cmd, { max_retries: 3 }),
      tomlType("sdk_retry", cmd, { max_retries: 2 }),
      tomlType("sdk_error", cmd, { max_retries: 1 }),
      tomlType("sdk_print", cmd),
      tomlType("sdk_badresult", cmd, { max_retries: 3 }),
      tomlType("sdk_slow", cmd, { max_concurrent: 2 }),
      tomlType("sdk_ping", cmd),
      tomlType("sdk_term", cmd),
      tomlType("sdk_setup", cmd),
      tomlType("text_processing", [process.execPath, join(exampleDir, "node_worker.mjs")]),
    ];
    const config =
      "[pool]\nmax_workers = 16\nmin_workers = 0\nhealth_check_interval_ms = 200\n" +
      "resource_monitor_interval_ms = 500\ngraceful_shutdown_timeout_ms = 3000\n\n" +
      types.join("");
    server = await Server.start(config);
  });

  after(async () => {
    if (server) await server.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  test("progress reaches the event stream through Client.watch", T, async () => {
    const client = server.client;
    const id = await client.submit("sdk_progress", { steps: 4, step_ms: 300 });
    const events = [];
    for await (const e of client.watch(id, { timeout: 30_000 })) events.push(e);
    const names = events.map((e) => e.event);
    assert.equal(names[0], "status", JSON.stringify(names));
    assert.equal(names.at(-1), "result", JSON.stringify(names));
    const progress = events.filter((e) => e.event === "progress").map((e) => [e.data.progress, e.data.stage]);
    assert.deepEqual(progress, [[25, "step 1/4"], [50, "step 2/4"], [75, "step 3/4"], [100, "step 4/4"]]);
    const final = events.at(-1).data;
    assert.equal(final.status, "completed", JSON.stringify(final));
    assert.equal(final.result.steps, 4);
    assert.deepEqual(final.progress, { progress: 100, stage: "step 4/4" });
    assert.equal((await client.get(id)).status, "completed");
  });

  test("a Fatal error fails the task once", T, async () => {
    const record = await server.client.execute("sdk_fatal", {});
    assert.deepEqual([record.status, record.attempts], ["failed", 1], JSON.stringify(record));
    assert.equal(record.error, "bad input on attempt 1");
  });

  test("a Retryable error is retried until the task is dead", T, async () => {
    const record = await server.client.execute("sdk_retry", {});
    assert.equal(record.max_retries, 2, JSON.stringify(record));
    assert.deepEqual([record.status, record.attempts], ["dead", 3], JSON.stringify(record));
    assert.match(record.error, /busy on attempt 3/);
  });

  test("any other error is retryable, with its name and message", T, async () => {
    const record = await server.client.execute("sdk_error", {});
    assert.equal(record.attempts, 2, JSON.stringify(record));
    assert.ok(["dead", "failed"].includes(record.status), JSON.stringify(record));
    assert.match(record.error, /RangeError: odd value on attempt 2/);
  });

  test("a stray console.log does not break the task", T, async () => {
    const first = await server.client.execute("sdk_print", { hello: "world" });
    assert.equal(first.status, "completed", JSON.stringify(first));
    assert.deepEqual(first.result.echoed, { hello: "world" });
    const second = await server.client.execute("sdk_print", { n: 2 });
    assert.equal(second.status, "completed", JSON.stringify(second));
    assert.equal(second.result.pid, first.result.pid, "the worker was replaced");
    const logged = await waitFor(5000, () => server.log.some((l) => l.includes("a stray console.log from the handler")));
    assert.ok(logged, server.log.slice(-40).join("\n"));
  });

  test("a result that is not JSON fails the task, not the process", T, async () => {
    const bad = await server.client.execute("sdk_badresult", {});
    assert.deepEqual([bad.status, bad.attempts], ["failed", 1], JSON.stringify(bad));
    assert.match(bad.error, /not JSON-serialisable/);
    const good = await server.client.execute("sdk_badresult", { ok: true });
    assert.equal(good.status, "completed", JSON.stringify(good));
    assert.equal(good.result.pid, bad.worker_pid);
  });

  test("pings are answered while a 2-second async handler runs", T, async () => {
    // health_check_interval_ms = 200: a worker that misses a pong is replaced; the pid stays.
    const client = server.client;
    const pid = (await client.execute("sdk_ping", { ms: 0 })).result.pid;
    await sleep(600);
    for (let i = 0; i < 2; i++) {
      const slow = await client.execute("sdk_ping", { ms: 2000 });
      assert.equal(slow.status, "completed", JSON.stringify(slow));
      assert.equal(slow.result.pid, pid, JSON.stringify(slow));
      await sleep(600);
    }
    const last = await client.execute("sdk_ping", { ms: 0 });
    assert.equal(last.result.pid, pid);
    assert.equal(last.result.setups, 1);
    assert.deepEqual((await server.workers("sdk_ping")).map((w) => w.pid), [pid]);
    assert.deepEqual(server.log.filter((l) => l.includes("unresponsive") && l.includes("sdk_ping")), []);
  });

  test("SIGTERM lets the running task finish, then teardown runs and the worker exits", T, async () => {
    const client = server.client;
    const pid = (await client.execute("sdk_term", { ms: 0 })).result.pid;
    const id = await client.submit("sdk_term", { ms: 1500 });
    assert.ok(await waitFor(10_000, async () => (await client.get(id)).status === "running"), "never running");
    await sleep(300);
    process.kill(pid, "SIGTERM");
    const done = await waitFor(15_000, async () => {
      const r = await client.get(id);
      return ["queued", "running"].includes(r.status) ? null : r;
    });
    assert.ok(done, "the task did not end");
    assert.deepEqual([done.status, done.attempts], ["completed", 1], JSON.stringify(done));
    assert.equal(done.result.pid, pid);
    assert.ok(await waitFor(10_000, () => !alive(pid)), `worker ${pid} still runs`);
    assert.ok(
      await waitFor(5000, () => setupLines(setupLog, pid).some((l) => l.startsWith("teardown"))),
      setupLines(setupLog, pid).join("\n"),
    );
  });

  test("setup runs once for many tasks", T, async () => {
    const results = [];
    for (let i = 0; i < 6; i++) results.push(await server.client.execute("sdk_setup", { ms: 0 }));
    assert.ok(results.every((r) => r.status === "completed"), JSON.stringify(results));
    const pids = new Set(results.map((r) => r.result.pid));
    assert.equal(pids.size, 1, JSON.stringify(results));
    assert.deepEqual(results.map((r) => r.result.setups), [1, 1, 1, 1, 1, 1]);
    const tasks = results.map((r) => r.result.tasks);
    assert.deepEqual(tasks, [...tasks].sort((a, b) => a - b));
    assert.equal(new Set(tasks).size, 6);
    const [pid] = pids;
    assert.deepEqual(setupLines(setupLog, pid).filter((l) => l.startsWith("setup")), [`setup ${pid}`]);
  });

  test("Client submit, get, cancel and its errors", T, async () => {
    const client = server.client;
    const id = await client.submit("sdk_slow", { ms: 20000 });
    assert.ok(await waitFor(10_000, async () => (await client.get(id)).status === "running"));
    assert.equal((await client.cancel(id)).status, "cancelled");
    await assert.rejects(client.cancel(id), (e) => e instanceof ClientError && e.status === 409);
    await assert.rejects(client.get("no-such-task"), (e) => e instanceof ClientError && e.status === 404);
    await assert.rejects(client.execute("no_such_type", {}), (e) => e instanceof ClientError && e.status === 404);
    await assert.rejects(client.submit("sdk_slow", {}, { bogus: 1 }), TypeError);
    // A finished task's stream gives its result once.
    const done = await client.execute("sdk_slow", { ms: 0 });
    const names = [];
    for await (const e of client.watch(done.id, { timeout: 10_000 })) names.push(e.event);
    assert.deepEqual(names, ["result"]);
  });

  test("the example worker serves text_processing, set up once", T, async () => {
    const client = server.client;
    const text = "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs.";
    const id = await client.submit("text_processing", { text, top: 2 });
    const events = [];
    for await (const e of client.watch(id, { timeout: 30_000 })) events.push(e);
    const final = events.at(-1).data;
    assert.equal(final.status, "completed", JSON.stringify(events));
    assert.ok(events.some((e) => e.event === "progress" && e.data.stage === "counted 15/15 words"), JSON.stringify(events));
    assert.deepEqual(final.result.top, [{ word: "dog", count: 2 }, { word: "fox", count: 2 }]);
    assert.equal(final.result.words, 15);
    assert.equal(final.result.sha256.length, 64);
    const again = await client.execute("text_processing", { text: "one two two" });
    assert.equal(again.status, "completed", JSON.stringify(again));
    assert.equal(again.result.pid, final.result.pid);
    assert.equal(again.result.loads, 1);
    const bad = await client.execute("text_processing", { text: 42 });
    assert.deepEqual([bad.status, bad.attempts], ["failed", 1], JSON.stringify(bad));
    assert.equal(bad.error, "data.text must be a string");
  });
});

describe("over pipes, without the server", () => {
  let dir;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "wp-sdk-node-direct-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test("a pong comes during a running 2-second async handler", T, async () => {
    const w = new Direct(WORKER, [join(dir, "pong.log")]);
    try {
      w.send({ ping: 1 });
      assert.deepEqual((await w.read()).message, { pong: 1 });
      const started = Date.now();
      w.send({ id: "t1", type: "sdk_slow", data: { ms: 2000 }, attempt: 1 });
      await sleep(300);
      w.send({ ping: 2 });
      const pong = await w.read();
      assert.deepEqual(pong.message, { pong: 2 });
      assert.ok(pong.at - started < 1500, `the pong waited for the handler (${pong.at - started} ms)`);
      const result = await w.read();
      assert.equal(result.message.id, "t1");
      assert.ok("result" in result.message, JSON.stringify(result.message));
      assert.ok(result.at - started >= 1900, `the handler ended early (${result.at - started} ms)`);
      w.proc.stdin.end(); // EOF: the worker exits 0
      assert.deepEqual(await exited(w.proc, 10_000), { code: 0, signal: null });
    } finally {
      await w.kill();
    }
  });

  test("SIGTERM finishes the task, skips the queue, runs teardown, exits 0; a second exits at once", T, async () => {
    const log = join(dir, "term.log");
    let w = new Direct(WORKER, [log]);
    try {
      w.send({ ping: 1 });
      assert.deepEqual((await w.read()).message, { pong: 1 });
      w.send({ id: "t1", type: "sdk_slow", data: { ms: 1000 }, attempt: 1 });
      w.send({ id: "t2", type: "sdk_slow", data: { ms: 0 }, attempt: 1 });
      await sleep(300);
      w.proc.kill("SIGTERM");
      const result = (await w.read()).message;
      assert.equal(result.id, "t1", JSON.stringify(result));
      assert.equal(result.result.attempt, 1);
      assert.deepEqual(await exited(w.proc, 10_000), { code: 0, signal: null });
      await sleep(100);
      assert.equal(w.lines.length, 0, "the queued task was started after SIGTERM");
      assert.deepEqual(readFileSync(log, "utf8").trim().split("\n").map((l) => l.split(" ")[0]), ["setup", "teardown"]);
    } finally {
      await w.kill();
    }
    w = new Direct(WORKER, [log]);
    try {
      w.send({ ping: 1 });
      assert.deepEqual((await w.read()).message, { pong: 1 });
      w.send({ id: "t1", type: "sdk_slow", data: { ms: 20000 }, attempt: 1 });
      await sleep(300);
      w.proc.kill("SIGTERM");
      await sleep(200);
      const started = Date.now();
      w.proc.kill("SIGTERM");
      const end = await exited(w.proc, 5000);
      assert.ok(end && end.code !== 0, JSON.stringify(end));
      assert.ok(Date.now() - started < 2000);
    } finally {
      await w.kill();
    }
  });

  test("queued tasks run in order and stdout carries only protocol lines", T, async () => {
    const w = new Direct(WORKER, [join(dir, "order.log")]);
    try {
      for (let n = 0; n < 3; n++) w.send({ id: `p${n}`, type: "sdk_print", data: { n }, attempt: 1 });
      w.send({ id: "bad", type: "no_handler", data: null, attempt: 1 });
      w.proc.stdin.end();
      const got = [];
      for (let i = 0; i < 4; i++) got.push((await w.read()).message);
      assert.deepEqual(got.map((g) => g.id), ["p0", "p1", "p2", "bad"]);
      assert.deepEqual(got.slice(0, 3).map((g) => g.result.echoed.n), [0, 1, 2]);
      assert.deepEqual(got[3], { id: "bad", error: 'no handler for task type "no_handler"', retryable: false });
      assert.deepEqual(await exited(w.proc, 10_000), { code: 0, signal: null });
      assert.equal(w.lines.length, 0);
      assert.match(w.stderr, /a stray console\.log from the handler/);
    } finally {
      await w.kill();
    }
  });

  test("a setup that throws exits 1 after the teardowns, answering no ping", T, async () => {
    const log = join(dir, "failing.log");
    const w = new Direct(FAILING_SETUP, [log]);
    try {
      w.send({ ping: 1 });
      const end = await exited(w.proc, 10_000);
      assert.deepEqual(end, { code: 1, signal: null }, w.stderr);
      assert.equal(w.lines.length, 0, JSON.stringify(w.lines));
      assert.match(w.stderr, /setup failed:\n.*no model file/);
      assert.equal(readFileSync(log, "utf8"), `teardown ${w.proc.pid}\n`);
    } finally {
      await w.kill();
    }
  });

  test("importing the package does not take stdout", T, async () => {
    const script =
      'import * as w from "@workerpool/worker"; console.log(JSON.stringify(Object.keys(w).sort()));' +
      "process.stdout.write(String(process.stdout.write === process.stdout.constructor.prototype.write));";
    // Resolve the package by its name, through a node_modules link as `npm install` makes.
    const app = join(dir, "app");
    mkdirSync(join(app, "node_modules", "@workerpool"), { recursive: true });
    symlinkSync(PACKAGE, join(app, "node_modules", "@workerpool", "worker"), "dir");
    writeFileSync(join(app, "check.mjs"), script);
    const proc = spawn(process.execPath, [join(app, "check.mjs")], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    proc.stdout.on("data", (c) => (out += c));
    proc.stderr.on("data", (c) => (err += c));
    const end = await exited(proc, 30_000);
    if (!end) proc.kill("SIGKILL");
    assert.deepEqual(end, { code: 0, signal: null }, err);
    const [keys, same] = out.split("\n");
    assert.deepEqual(JSON.parse(keys), ["Client", "ClientError", "Context", "Fatal", "Retryable", "Worker"]);
    assert.equal(same, "true");
  });
});

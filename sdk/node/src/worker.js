// The worker side: workerpool's JSON-lines protocol over stdin/stdout.
//
// The pool writes one JSON object per line on the worker's stdin:
//
//   {"id", "type", "data", "attempt"}   a task;
//   {"ping": N}                         a health check, answered {"pong": N}.
//
// and reads the worker's answers on its stdout: any number of {"id", "progress", "stage"},
// then {"id", "result"} or {"id", "error", "retryable"}.
//
// stdin is read with data events on Node's event loop, so a ping is answered at once while an
// async handler awaits. Handlers run one at a time, in the order their tasks came. A handler
// that keeps the CPU busy without awaiting blocks the event loop, and with it the pongs: split
// long CPU work with `await` (e.g. `await new Promise(setImmediate)`), move it to a
// `worker_threads` Worker, or raise the type's health-check tolerance.

import { createInterface } from "node:readline";

/** The task failed and running it again may succeed: the pool retries it. */
export class Retryable extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "Retryable";
  }
}

/** The task failed and running it again would fail the same way: no retry. */
export class Fatal extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = "Fatal";
  }
}

function log(message) {
  try {
    process.stderr.write(String(message).replace(/\n+$/, "") + "\n");
  } catch {
    // stderr gone: nothing left to tell.
  }
}

function describe(error) {
  if (error instanceof Error) {
    const message = error.message;
    return message ? `${error.name}: ${message}` : error.name || "Error";
  }
  try {
    return typeof error === "string" ? error : JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}

// The real stdout, kept for protocol lines. Taken once per process.
let taken = null;

/**
 * Keeps the real stdout for the protocol and points user output at stderr.
 *
 * `process.stdout.write` (and so `console.log`, `console.info`, `console.dir`, ...) writes to
 * stderr from then on, which the pool logs with the worker id. Protocol lines go through the
 * original write method, kept here. (Node cannot re-point file descriptor 1 itself: a child
 * process spawned with `stdio: "inherit"`, or a native addon writing to fd 1, still writes
 * there; give children `stdio: ["ignore", 2, 2]` or `["ignore", "pipe", "inherit"]`.)
 */
function takeStdout() {
  if (taken) return taken;
  const stdout = process.stdout;
  const write = stdout.write.bind(stdout);
  const protocol = {
    broken: false,
    /** Writes one line; a stdout that broke (the pool is gone) drops it. */
    line(text) {
      if (this.broken) return;
      try {
        write(text + "\n");
      } catch {
        this.broken = true;
      }
    },
    send(message) {
      this.line(JSON.stringify(message));
    },
    /** Resolves once what was written has left (stdout on a pipe is synchronous on Linux). */
    flush() {
      return new Promise((resolve) => {
        if (this.broken) return resolve();
        try {
          write("", () => resolve());
        } catch {
          resolve();
        }
        setTimeout(resolve, 1000).unref();
      });
    },
  };
  stdout.on("error", () => {
    // EPIPE and the like: nobody reads answers any more.
    protocol.broken = true;
  });
  const toStderr = function (chunk, encoding, callback) {
    return process.stderr.write(chunk, encoding, callback);
  };
  stdout.write = toStderr;
  taken = protocol;
  return protocol;
}

/** One task as the handler sees it. */
export class Context {
  #protocol;

  constructor(id, type, data, attempt, protocol) {
    /** The task id the pool assigned. */
    this.id = id;
    /** The task type, e.g. "text_processing". */
    this.type = type;
    /** The task's input: any JSON value (null when the task has none). */
    this.data = data === undefined ? null : data;
    /** Which attempt this is, from 1. */
    this.attempt = attempt;
    this.#protocol = protocol;
  }

  /**
   * Reports progress (0 to 100, clamped and rounded) and, optionally, a stage name. It reaches
   * `/api/tasks/{id}/events` as a `progress` event.
   */
  progress(percent, stage) {
    const number = typeof percent === "string" && percent.trim() !== "" ? Number(percent) : percent;
    if (typeof number !== "number" || !Number.isFinite(number)) {
      throw new TypeError(`progress must be a number from 0 to 100, not ${String(percent)}`);
    }
    const message = { id: this.id, progress: Math.max(0, Math.min(100, Math.round(number))) };
    if (stage !== undefined && stage !== null) message.stage = String(stage);
    this.#protocol.send(message);
  }
}

/**
 * A process worker: register handlers with `task`, then call `run`.
 *
 * Creating a Worker takes stdout for the protocol at once: from then on `console.log` and
 * `process.stdout.write` write to stderr.
 */
export class Worker {
  #handlers = new Map();
  #fallback = null;
  #setups = [];
  #teardowns = [];
  #protocol;
  #queue = [];
  #busy = false;
  #eof = false;
  #stopping = false;
  #terms = 0;
  #running = false;
  #closing = null;
  #reader = null;

  constructor() {
    this.#protocol = takeStdout();
  }

  /**
   * Registers the handler of the named task types: `task("a", fn)`, `task("a", "b", fn)`,
   * `task(["a", "b"], fn)`; `task(fn)` handles every type without a handler of its own.
   * The handler takes a Context, may be async, and returns the task's result (a JSON value).
   */
  task(...args) {
    const fn = args.pop();
    if (typeof fn !== "function") throw new TypeError("a task handler must be a function");
    const types = args.flat();
    if (types.length === 0) {
      this.#fallback = fn;
      return this;
    }
    for (const name of types) {
      if (typeof name !== "string" || name === "") {
        throw new TypeError(`a task type is a non-empty string, not ${JSON.stringify(name)}`);
      }
      this.#handlers.set(name, fn);
    }
    return this;
  }

  /** Registers a function run once per process before the first task (no arguments; may be async). */
  setup(fn) {
    if (typeof fn !== "function") throw new TypeError("setup takes a function");
    this.#setups.push(fn);
    return this;
  }

  /** Registers a function run once when the worker exits (no arguments; may be async). */
  teardown(fn) {
    if (typeof fn !== "function") throw new TypeError("teardown takes a function");
    this.#teardowns.push(fn);
    return this;
  }

  /**
   * Serves tasks until stdin ends or SIGTERM, then runs the teardowns and exits 0.
   *
   * The setup functions run first; until they finish, pings wait unanswered (the pool counts
   * the worker as starting: raise the type's `start_timeout_ms` for a slow model load). A
   * setup that throws exits the process with code 1. SIGTERM lets the running task finish and
   * answer, starts no queued task, runs the teardowns and exits 0; a second SIGTERM exits at
   * once (code 143). The returned promise does not resolve: the process exits.
   */
  run() {
    if (this.#running) throw new Error("Worker.run() was already called");
    this.#running = true;
    process.on("SIGTERM", () => this.#onTerm());
    return new Promise(() => {
      this.#start().catch((error) => {
        log(`workerpool worker: ${error && error.stack ? error.stack : describe(error)}`);
        process.exit(1);
      });
    });
  }

  async #start() {
    for (const fn of this.#setups) {
      try {
        await fn();
      } catch (error) {
        log(`workerpool worker: setup failed:\n${error && error.stack ? error.stack : describe(error)}`);
        await this.#runTeardowns();
        await this.#protocol.flush();
        process.exit(1);
      }
    }
    if (this.#stopping) return this.#close();
    const reader = createInterface({ input: process.stdin, crlfDelay: Infinity, terminal: false });
    this.#reader = reader;
    reader.on("line", (raw) => this.#onLine(raw));
    reader.on("close", () => {
      this.#eof = true;
      this.#pump();
    });
    process.stdin.on("error", (error) => {
      log(`workerpool worker: reading stdin failed: ${describe(error)}`);
      this.#eof = true;
      this.#pump();
    });
  }

  #onTerm() {
    this.#terms += 1;
    if (this.#terms > 1) {
      // A second SIGTERM: leave at once.
      process.exit(128 + 15);
    }
    this.#stopping = true;
    if (this.#busy) log("workerpool worker: SIGTERM: finishing the current task, then exiting");
    if (this.#reader) this.#pump();
  }

  #onLine(raw) {
    const text = raw.trim();
    if (!text) return;
    let message;
    try {
      message = JSON.parse(text);
    } catch (error) {
      log(`workerpool worker: a line that is not JSON (${error.message}): ${text.slice(0, 200)}`);
      return;
    }
    const isObject = message !== null && typeof message === "object" && !Array.isArray(message);
    if (isObject && "ping" in message && !("id" in message)) {
      // Answered here, on the event loop, whatever handler is awaiting.
      this.#protocol.send({ pong: message.ping });
      return;
    }
    if (!isObject || typeof message.id !== "string") {
      log(`workerpool worker: a line that is neither a ping nor a task: ${text.slice(0, 200)}`);
      return;
    }
    this.#queue.push(message);
    this.#pump();
  }

  #pump() {
    if (this.#busy || this.#closing) return;
    if (this.#stopping || (this.#eof && this.#queue.length === 0)) {
      this.#close();
      return;
    }
    const next = this.#queue.shift();
    if (!next) return;
    this.#busy = true;
    this.#handle(next)
      .catch((error) => log(`workerpool worker: ${describe(error)}`))
      .finally(() => {
        this.#busy = false;
        this.#pump();
      });
  }

  async #handle(message) {
    const id = message.id;
    const type = message.type;
    const attempt = Number.isInteger(message.attempt) ? message.attempt : 1;
    const handler = this.#handlers.get(type) ?? this.#fallback;
    if (!handler) {
      this.#fail(id, `no handler for task type ${JSON.stringify(type ?? null)}`, false);
      return;
    }
    const ctx = new Context(id, type, message.data, attempt, this.#protocol);
    let result;
    try {
      result = await handler(ctx);
    } catch (error) {
      if (error instanceof Fatal) {
        this.#fail(id, error.message || "fatal error", false);
      } else if (error instanceof Retryable) {
        this.#fail(id, error.message || "retryable error", true);
      } else {
        log(`workerpool worker: task ${id} (${type}) threw:\n${error && error.stack ? error.stack : describe(error)}`);
        this.#fail(id, describe(error), true);
      }
      return;
    }
    let encoded;
    try {
      encoded = JSON.stringify(result === undefined ? null : result);
    } catch (error) {
      this.#fail(id, `the result is not JSON-serialisable: ${describe(error)}`, false);
      return;
    }
    if (encoded === undefined) {
      this.#fail(id, `the result is not JSON-serialisable: a ${typeof result}`, false);
      return;
    }
    this.#protocol.line(`{"id":${JSON.stringify(id)},"result":${encoded}}`);
  }

  #fail(id, message, retryable) {
    this.#protocol.send({ id, error: String(message), retryable: Boolean(retryable) });
  }

  async #runTeardowns() {
    for (const fn of this.#teardowns) {
      try {
        await fn();
      } catch (error) {
        log(`workerpool worker: teardown failed:\n${error && error.stack ? error.stack : describe(error)}`);
      }
    }
  }

  #close() {
    if (!this.#closing) {
      let started;
      this.#closing = new Promise((resolve) => (started = resolve));
      started(
        (async () => {
          // Closing the reader emits "close" at once, which pumps again: #closing is set first.
          if (this.#reader) this.#reader.close();
          await this.#runTeardowns();
          await this.#protocol.flush();
          process.exit(0);
        })(),
      );
    }
    return this.#closing;
  }
}

// Type declarations for @workerpool/worker.

/** Any JSON value: what a task's data and result may be. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** The task failed and running it again may succeed: the pool retries it. */
export class Retryable extends Error {
  constructor(message?: string, options?: { cause?: unknown });
}

/** The task failed and running it again would fail the same way: no retry (`retryable: false`). */
export class Fatal extends Error {
  constructor(message?: string, options?: { cause?: unknown });
}

/** One task as the handler sees it. */
export class Context<Data = any> {
  /** The task id the pool assigned. */
  readonly id: string;
  /** The task type, e.g. "text_processing". */
  readonly type: string;
  /** The task's input: any JSON value (null when the task has none). */
  readonly data: Data;
  /** Which attempt this is, from 1. */
  readonly attempt: number;
  /** Reports progress (0 to 100, clamped and rounded) and, optionally, a stage name. */
  progress(percent: number, stage?: string): void;
}

/** A task handler: returns (or resolves to) the task's result, a JSON value. */
export type Handler<Data = any> = (ctx: Context<Data>) => unknown | Promise<unknown>;

/**
 * A process worker speaking workerpool's JSON-lines protocol on stdin/stdout.
 *
 * Creating one takes stdout for the protocol: `console.log` and `process.stdout.write` write to
 * stderr from then on. Pings are answered on the event loop while an async handler awaits; a
 * handler that keeps the CPU busy without awaiting delays them.
 */
export class Worker {
  constructor();
  /** Handles every task type without a handler of its own. */
  task<Data = any>(handler: Handler<Data>): this;
  /** Handles the named task types: `task("a", fn)`, `task("a", "b", fn)`, `task(["a", "b"], fn)`. */
  task<Data = any>(...args: [...types: (string | string[])[], handler: Handler<Data>]): this;
  /** Runs `fn` once per process, before the first task. */
  setup(fn: () => unknown | Promise<unknown>): this;
  /** Runs `fn` once when the worker exits (stdin ended or SIGTERM). */
  teardown(fn: () => unknown | Promise<unknown>): this;
  /**
   * Runs the setups, then serves tasks until stdin ends or SIGTERM; then runs the teardowns and
   * exits 0. A setup that throws exits 1; a second SIGTERM exits at once (143). Never resolves.
   */
  run(): Promise<never>;
}

/** A task record (GET /api/tasks/{id}); see docs/API.md for every field. */
export interface TaskRecord {
  id: string;
  type: string;
  status: "queued" | "running" | "completed" | "failed" | "dead" | "timed_out" | "cancelled" | string;
  attempts: number;
  max_retries: number;
  data?: Json;
  result?: Json;
  error?: string | null;
  progress?: { progress: number; stage?: string | null } | null;
  worker_pid?: number | null;
  [key: string]: unknown;
}

/** Options of a task (CONTRACT section 5): milliseconds for timeout and delay. */
export interface TaskOptions {
  priority?: number | string;
  timeout?: number;
  max_retries?: number;
  /** The same as max_retries. */
  maxRetries?: number;
  delay?: number;
}

/** One server-sent event of a task: status, progress, then result (the final record). */
export interface TaskEvent {
  event: "status" | "progress" | "result" | string;
  data: any;
}

export interface ClientOptions {
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** Bounds each request, in milliseconds (default 300000). */
  timeout?: number;
  /**
   * A PEM file of the certificate authorities trusted for HTTPS instead of the system's
   * (default: the WORKERPOOL_CA_FILE environment variable); requests then go through
   * node:https, since the global fetch takes no CA per request.
   */
  caFile?: string;
  /** A fetch to use instead of the global one (it wins over `caFile`). */
  fetch?: typeof fetch;
}

/** The server refused a request. */
export class ClientError extends Error {
  constructor(status: number, body: unknown);
  /** The HTTP status (0 when the event stream ended before its result). */
  readonly status: number;
  /** The answer's JSON, or its text. */
  readonly body: unknown;
}

/** A small client of workerpool's REST API, over fetch. */
export class Client {
  constructor(url: string, options?: ClientOptions);
  readonly url: string;
  /** Runs a task and waits for its end; resolves to the record, whatever its final status. */
  execute(type: string, data?: Json, options?: TaskOptions): Promise<TaskRecord>;
  /** Queues a task without waiting; resolves to its id. */
  submit(type: string, data?: Json, options?: TaskOptions): Promise<string>;
  /** The task record now. */
  get(id: string): Promise<TaskRecord>;
  /** Cancels a waiting or running task; resolves to its record. */
  cancel(id: string): Promise<TaskRecord>;
  /**
   * Follows a task's events, ending after `result`. `timeout` bounds the wait for each chunk
   * (ms); a broken stream is reopened with Last-Event-ID up to `reconnects` times in a row.
   */
  watch(id: string, options?: { timeout?: number; reconnects?: number }): AsyncGenerator<TaskEvent, void, undefined>;
  /** GET /api/workers/status. */
  status(): Promise<any>;
  /** GET /api/workers/stats. */
  stats(): Promise<any>;
}

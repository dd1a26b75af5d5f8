// A small client of workerpool's REST API (docs/API.md), on the built-in fetch (Node >= 18),
// or node:https with a private certificate authority (`caFile`, ./https.js).

import { fetchTrusting } from "./https.js";

const TASK_OPTIONS = new Map([
  ["priority", "priority"],
  ["timeout", "timeout"],
  ["max_retries", "max_retries"],
  ["maxRetries", "max_retries"],
  ["delay", "delay"],
  ["wait", "wait"],
]);

/** The server refused a request: `status` is the HTTP status, `body` its JSON (or text). */
export class ClientError extends Error {
  constructor(status, body) {
    const detail = body && typeof body === "object" && "error" in body ? body.error : body;
    super(`HTTP ${status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
    this.name = "ClientError";
    this.status = status;
    this.body = body;
  }
}

function isRecord(body) {
  return body !== null && typeof body === "object" && "id" in body && "status" in body;
}

function decode(text) {
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Whether a request failed because the server's certificate is not trusted (no retry mends
 * that): Node's TLS error codes, on the error or, from fetch, on its cause. */
function untrusted(error) {
  const code = error?.code ?? error?.cause?.code;
  return typeof code === "string" && /CERT|SIGNATURE|ALTNAME/.test(code);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Calls a workerpool server at `url` (`http://host:port` or `https://host:port`).
 *
 * `token` is sent as `Authorization: Bearer` (needed when the server runs with
 * WORKERPOOL_API_TOKEN; the read token WORKERPOOL_READ_TOKEN opens the reads only).
 * `caFile` (default: the WORKERPOOL_CA_FILE environment variable) is a PEM file of the
 * certificate authorities trusted for HTTPS instead of the system's, e.g. a private CA that
 * signed the server's certificate; requests then go through node:https. `timeout` bounds each
 * request in milliseconds (default 300000); a waited `execute` takes as long as the task, so
 * give it a timeout above the task's. `fetch` replaces the fetch used (and `caFile`).
 */
export class Client {
  constructor(url, { token, timeout = 300_000, fetch: fetchImpl, caFile } = {}) {
    if (typeof url !== "string" || !url) throw new TypeError("Client takes the server's URL");
    this.url = url.replace(/\/+$/, "");
    this.token = token ?? null;
    this.timeout = timeout;
    this.caFile = caFile || process.env.WORKERPOOL_CA_FILE || null;
    this._fetch = fetchImpl ?? (this.caFile ? fetchTrusting(this.caFile) : globalThis.fetch);
    if (typeof this._fetch !== "function") throw new Error("no fetch: Node 18 or newer is needed");
  }

  // Tasks -----------------------------------------------------------------------------------

  /**
   * Runs a task and waits for its end; resolves to the task record (any final status:
   * completed, failed, dead, timed_out, cancelled). Options: priority, timeout (ms),
   * max_retries, delay (ms). Rejects with ClientError when the task was not accepted.
   */
  async execute(type, data = null, options = {}) {
    const body = Client.#taskBody(type, data, { wait: true, ...options });
    const { status, body: answer } = await this.#send("POST", "/api/workers/execute", body);
    if (isRecord(answer)) return answer;
    throw new ClientError(status, answer);
  }

  /** Queues a task without waiting; resolves to its id. */
  async submit(type, data = null, options = {}) {
    const body = Client.#taskBody(type, data, { ...options, wait: false });
    const { status, body: answer } = await this.#send("POST", "/api/workers/execute", body);
    if (status === 202 && answer && typeof answer === "object" && "id" in answer) return answer.id;
    throw new ClientError(status, answer);
  }

  /** The task record now. */
  get(id) {
    return this.#expect(200, "GET", `/api/tasks/${encodeURIComponent(id)}`);
  }

  /** Cancels a waiting or running task; resolves to its record (status cancelled). */
  cancel(id) {
    return this.#expect(200, "DELETE", `/api/tasks/${encodeURIComponent(id)}`);
  }

  /**
   * Follows a task's events: an async iterator of `{event, data}` (status, progress, then
   * result with the final record) that ends after `result`.
   *
   * A broken stream is reopened with Last-Event-ID (at most `reconnects` times in a row), so
   * nothing is repeated. `timeout` (ms) bounds the wait for each chunk (the server sends a
   * keep-alive every 15 s). Leaving the loop early closes the stream.
   */
  async *watch(id, { timeout, reconnects = 5 } = {}) {
    const path = `/api/tasks/${encodeURIComponent(id)}/events`;
    const idle = timeout ?? this.timeout;
    let lastId = null;
    let retryMs = 3000;
    let failures = 0;
    for (;;) {
      const headers = { Accept: "text/event-stream" };
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      const controller = new AbortController();
      let timer = setTimeout(() => controller.abort(new Error("the event stream went quiet")), idle);
      const rearm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => controller.abort(new Error("the event stream went quiet")), idle);
      };
      let ended = false;
      try {
        let response;
        try {
          response = await this._fetch(this.url + path, {
            method: "GET",
            headers: this.#headers(headers),
            signal: controller.signal,
          });
        } catch (error) {
          failures += 1;
          if (failures > reconnects || untrusted(error)) throw error;
          await sleep(retryMs);
          continue;
        }
        if (response.status === 204) return; // ended, and the last event seen was its result
        if (response.status !== 200) {
          throw new ClientError(response.status, decode(await response.text()));
        }
        const decoder = new TextDecoder();
        let buffer = "";
        let event = null;
        let data = [];
        try {
          for await (const chunk of response.body) {
            rearm();
            buffer += decoder.decode(chunk, { stream: true });
            let newline;
            while ((newline = buffer.indexOf("\n")) >= 0) {
              let line = buffer.slice(0, newline);
              buffer = buffer.slice(newline + 1);
              if (line.endsWith("\r")) line = line.slice(0, -1);
              if (line === "") {
                if (data.length) {
                  const name = event || "message";
                  failures = 0;
                  yield { event: name, data: decode(data.join("\n")) };
                  if (name === "result") return;
                }
                event = null;
                data = [];
                continue;
              }
              if (line.startsWith(":")) continue; // a comment: keep-alive
              const colon = line.indexOf(":");
              const field = colon < 0 ? line : line.slice(0, colon);
              let value = colon < 0 ? "" : line.slice(colon + 1);
              if (value.startsWith(" ")) value = value.slice(1);
              if (field === "event") event = value;
              else if (field === "data") data.push(value);
              else if (field === "id") lastId = value;
              else if (field === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
            }
          }
          ended = true;
        } catch (error) {
          if (error instanceof ClientError) throw error;
          ended = false;
        }
      } finally {
        clearTimeout(timer);
        controller.abort();
      }
      failures += 1;
      if (failures > reconnects) {
        throw new ClientError(0, `the event stream of ${id} ${ended ? "ended" : "broke"} before its result`);
      }
      await sleep(Math.min(retryMs, 1000));
    }
  }

  // Pool ------------------------------------------------------------------------------------

  /** GET /api/workers/status: stats, queues, resources and every live worker. */
  status() {
    return this.#expect(200, "GET", "/api/workers/status");
  }

  /** GET /api/workers/stats. */
  stats() {
    return this.#expect(200, "GET", "/api/workers/stats");
  }

  // Plumbing --------------------------------------------------------------------------------

  static #taskBody(type, data, options) {
    if (typeof type !== "string" || !type) throw new TypeError("a task type is a non-empty string");
    const out = {};
    const unknown = [];
    for (const [key, value] of Object.entries(options)) {
      if (value === undefined) continue;
      const name = TASK_OPTIONS.get(key);
      if (name) out[name] = value;
      else unknown.push(key);
    }
    if (unknown.length) {
      throw new TypeError(
        `unknown task options: ${unknown.sort().join(", ")} (known: priority, timeout, max_retries, delay, wait)`,
      );
    }
    return { type, data: data === undefined ? null : data, options: out };
  }

  #headers(extra) {
    const headers = { ...extra };
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    return headers;
  }

  async #send(method, path, body) {
    const headers = { Accept: "application/json" };
    const init = { method, signal: AbortSignal.timeout(this.timeout) };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    init.headers = this.#headers(headers);
    const response = await this._fetch(this.url + path, init);
    return { status: response.status, body: decode(await response.text()) };
  }

  async #expect(want, method, path, body) {
    const { status, body: answer } = await this.#send(method, path, body);
    if (status !== want) throw new ClientError(status, answer);
    return answer;
  }
}

// The page's one way to the server: JSON requests with the bearer token, and server-sent
// event streams read through fetch (so they carry the token too, which EventSource cannot).

const TOKEN_KEY = "workerpool.token";

/** An answer the server refused (4xx/5xx), with its status and JSON error. */
export class Refused extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
  declined = false;
}

let askToken = async () => null;
// Once the user turns the prompt down, the page stops asking (every poll would open it
// again) until a token is given through `setToken` (the Token button).
let declined = false;
let asking = null;

/** Sets how the page asks for a token: `ask(reason)` resolves to one, or null. */
export function onTokenNeeded(ask) {
  askToken = ask;
}

/** Whether the user turned the token prompt down. */
export const tokenDeclined = () => declined;

/** Asks once for all the requests refused at the same time; null when turned down. */
function ask(reason) {
  if (declined) return Promise.resolve(null);
  if (!asking) {
    asking = askToken(reason).then((given) => {
      asking = null;
      if (!given) declined = true;
      return given;
    });
  }
  return asking;
}

/** Whether a stream's answer says to stop for good: 204, or a client error that a retry
 * cannot mend (an unknown task, a bad request); 401 asks for the token instead. */
export function final(status) {
  return status === 204 || (status >= 400 && status < 500 && ![401, 408, 429].includes(status));
}

function headers(extra) {
  const h = Object.assign({ Accept: "application/json" }, extra);
  const t = token();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

/**
 * A JSON request. A 401 asks for the token once and tries again; a second refusal (or a
 * refused prompt) throws `Refused`.
 */
export async function request(method, path, body) {
  for (let attempt = 0; ; attempt++) {
    const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
    if (body !== undefined) init.body = JSON.stringify(body);
    const res = await fetch(path, init);
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = { error: text.slice(0, 200) };
    }
    if (res.ok) return json;
    if (res.status === 401 && attempt === 0) {
      const given = await ask(token() ? "The server refused the token." : "This server asks for a token.");
      if (given) {
        setToken(given);
        continue;
      }
    }
    throw new Refused(res.status, json);
  }
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, body);
export const del = (path) => request("DELETE", path);

/**
 * One server-sent event block (the lines before a blank line): its `event` (default
 * "message"), `data` (parsed as JSON when it is; undefined without a data line), `id` and
 * `retry` (null when absent). Comment lines are skipped.
 */
export function parseBlock(block) {
  let event = "message", id = null, retry = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const at = line.indexOf(":");
    const field = at < 0 ? line : line.slice(0, at);
    const value = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
    else if (field === "retry" && /^\d+$/.test(value)) retry = Number(value);
  }
  let parsed;
  if (data.length) {
    try {
      parsed = JSON.parse(data.join("\n"));
    } catch {
      parsed = data.join("\n");
    }
  }
  return { event, data: parsed, id, retry };
}

/**
 * Follows a server-sent event stream: `onEvent({event, data, id})` for each message, and
 * `onState(state)` with "live", "retrying" or "ended". It reconnects after the server's
 * `retry:` hint with `Last-Event-ID`, and stops for good on 204 or when `close()` is called.
 */
export function stream(path, onEvent, onState = () => {}) {
  const abort = new AbortController();
  let lastId = null;
  let retryMs = 3000;
  let closed = false;

  const dispatch = (block) => {
    const msg = parseBlock(block);
    if (msg.id !== null) lastId = msg.id;
    if (msg.retry !== null) retryMs = msg.retry;
    if (msg.data !== undefined) onEvent({ event: msg.event, data: msg.data, id: msg.id });
  };

  const run = async () => {
    while (!closed) {
      try {
        const extra = { Accept: "text/event-stream" };
        if (lastId !== null) extra["Last-Event-ID"] = lastId;
        const res = await fetch(path, { headers: headers(extra), signal: abort.signal });
        if (final(res.status)) break;
        if (res.status === 401) {
          const given = await ask("The live stream needs the token.");
          if (!given) break;
          setToken(given);
          continue;
        }
        if (!res.ok || !res.body) throw new Refused(res.status, null);
        onState("live");
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buffered = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffered += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
          let end;
          while ((end = buffered.indexOf("\n\n")) >= 0) {
            dispatch(buffered.slice(0, end));
            buffered = buffered.slice(end + 2);
            if (closed) return;
          }
        }
      } catch (e) {
        if (closed) return;
      }
      if (closed) break;
      onState("retrying");
      await new Promise((r) => setTimeout(r, retryMs));
    }
    onState("ended");
  };
  run();
  return {
    close() {
      closed = true;
      abort.abort();
    },
  };
}

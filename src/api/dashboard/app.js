// The dashboard: what the page knows (one `state`), how it stays current (the pool-event
// stream, and a slow poll when the stream is down), and which view the address shows.

import * as api from "./api.js";
import { fill, ms } from "./ui.js";
import { overview } from "./overview.js";
import { typePage } from "./type.js";
import { taskPage, executePage } from "./task.js";

const POLL_LIVE_MS = 10000; // a check while the stream is live
const POLL_FALLBACK_MS = 3000; // while it is down
const HISTORY = 60; // resource samples kept per worker (10 min at the default 10 s)
const EVENTS_KEPT = 50;
const RATE_WINDOW_MS = 5 * 60 * 1000;

const state = {
  status: null, health: null, types: null, typesAt: 0, resources: null,
  history: new Map(), // worker id -> [{at, cpu, rss, gpu}]
  counts: [], // [{at, byType: {name: {finished, failed}}}] over the last five minutes
  events: [],
  live: false,
  workerOffset: 0, workerType: "",
};

const $ = (id) => document.getElementById(id);
const main = $("main");

// ----- banner and actions -----

function banner(message, kind = "error", action) {
  const el = $("banner");
  el.className = `banner ${kind === "info" ? "info" : ""}`;
  fill(el, message, action || null);
  el.hidden = false;
  clearTimeout(banner.timer);
  if (kind === "info") banner.timer = setTimeout(() => (el.hidden = true), 4000);
}

/**
 * Runs an action; a refusal is said plainly, naming what was refused and why. `describe`
 * turns the answer into what to say when it is more than "done".
 */
async function act(what, run, describe) {
  try {
    const answer = await run();
    banner(`${what}: ${(describe && describe(answer)) || "done"}`, "info");
    refreshSoon();
    return answer;
  } catch (e) {
    if (e instanceof api.Refused) {
      // 401: no token or a wrong one. 403: the read token, which cannot change anything;
      // the server's message says so, and the button lets the API token replace it.
      const change =
        e.status === 401 ? tokenButton("Enter the token") : e.status === 403 ? tokenButton("Use the API token") : null;
      banner(`${what} was refused (HTTP ${e.status}): ${e.message}`, "error", change);
    } else {
      banner(`${what} failed: ${e.message}`);
    }
    return null;
  }
}

function tokenButton(label) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "small";
  b.textContent = label;
  b.addEventListener("click", async () => {
    const given = await askToken("Enter the API token.");
    if (given) api.setToken(given);
  });
  return b;
}

// ----- the token -----

function askToken(why) {
  const dialog = $("token-dialog");
  $("token-why").textContent = why;
  $("token-input").value = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const value = $("token-input").value.trim();
      resolve(dialog.returnValue === "ok" && value ? value : null);
    }, { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}
api.onTokenNeeded(askToken);
$("token-button").addEventListener("click", async () => {
  const given = await askToken(api.token() ? "Replace the token kept for this tab." : "Enter the API token.");
  if (given) {
    api.setToken(given);
    banner("Token kept for this tab", "info");
  }
});

// ----- keeping current -----

async function refresh() {
  try {
    const [status, health, types] = await Promise.all([
      api.get("/api/workers/status"),
      fetch("/api/workers/health", { headers: api.token() ? { Authorization: `Bearer ${api.token()}` } : {} })
        .then((r) => (r.status === 401 ? null : r.json())),
      // The types' settings change only with the binary, but their waits do: re-read them
      // with the slow poll, not on every event.
      state.types && Date.now() - state.typesAt < POLL_LIVE_MS ? Promise.resolve(state.types) : api.get("/api/workers/types"),
    ]);
    if (types !== state.types) state.typesAt = Date.now();
    Object.assign(state, { status, health, types });
    count(status.by_type);
    record(status.resources);
    renderHeader();
    render(false);
  } catch (e) {
    $("live").textContent = e instanceof api.Refused && e.status === 401
      ? "token needed (Token button)"
      : `cannot reach the server: ${e.message}`;
  }
}

/** Keeps the finished counts of each type over the last five minutes, for the rates. */
function count(byType) {
  const now = Date.now();
  state.counts.push({ at: now, byType: Object.fromEntries(Object.entries(byType)
    .map(([name, t]) => [name, { finished: t.tasks_completed + t.tasks_failed, failed: t.tasks_failed }])) });
  while (state.counts.length > 2 && now - state.counts[1].at > RATE_WINDOW_MS) state.counts.shift();
}

/** Keeps each worker's resource history, one point per new sample. */
function record(resources) {
  if (!resources) return;
  state.resources = resources;
  const live = new Set();
  for (const w of resources.workers || []) {
    live.add(w.worker_id);
    const points = state.history.get(w.worker_id) || [];
    if (!points.length || points[points.length - 1].at !== resources.sampled_at) {
      points.push({ at: resources.sampled_at, cpu: w.cpu_percent, rss: w.memory_bytes, gpu: w.gpu_memory_bytes });
      if (points.length > HISTORY) points.shift();
    }
    state.history.set(w.worker_id, points);
  }
  for (const id of state.history.keys()) if (!live.has(id)) state.history.delete(id);
}

let soon = null;
function refreshSoon() {
  if (soon) return;
  soon = setTimeout(() => {
    soon = null;
    refresh();
  }, 400);
}

function followPool() {
  api.stream("/api/workers/events", (msg) => {
    if (msg.event === "lagged") {
      state.events.unshift({ event: "lagged", data: msg.data, timestamp: Date.now() });
    } else if (msg.data && typeof msg.data === "object") {
      state.events.unshift(msg.data);
    }
    state.events.length = Math.min(state.events.length, EVENTS_KEPT);
    if (msg.event !== "pool_status") refreshSoon();
  }, (s) => {
    state.live = s === "live";
    $("live").textContent = state.live ? "live" : s === "ended" ? "polling" : "reconnecting…";
  });
}

function poll() {
  refresh();
  setTimeout(poll, state.live ? POLL_LIVE_MS : POLL_FALLBACK_MS);
}

function renderHeader() {
  const s = state.status, hl = state.health;
  $("instance").textContent = s ? `${s.instance_id} · up ${ms(s.uptime_ms)}` : "";
  const verdict = (hl && hl.status) || "unknown";
  const reasons = hl && Array.isArray(hl.reasons) ? hl.reasons : hl && hl.error ? [hl.error] : [];
  const el = $("health");
  el.className = `badge ${verdict}`;
  el.textContent = verdict;
  el.title = reasons.length ? reasons.join("\n") : "no problem reported";
}

// ----- views -----

let view = null; // the current view's `close()`, if it holds a stream

function route() {
  const [, page, arg] = (location.hash || "#/").match(/^#\/?([^/]*)\/?(.*)$/) || [];
  return { page: page || "", arg: decodeURIComponent(arg || "") };
}

const ctx = { state, act, refresh, refreshSoon, go: (hash) => (location.hash = hash), banner, api };

/** Draws the view of the address; `fresh` when the address changed (not on a refresh). */
function render(fresh) {
  const { page, arg } = route();
  if (fresh && view && view.close) view.close();
  if (page === "task") {
    if (fresh) view = taskPage(main, arg, ctx);
  } else if (page === "execute") {
    // Built again until the types are known (an address opened directly comes before them).
    if (fresh || !main.querySelector("#execute-type option")) view = executePage(main, ctx, arg);
  } else if (page === "type") {
    if (fresh || !view || !view.update) view = typePage(main, arg, ctx);
    else view.update();
  } else {
    view = null;
    overview(main, ctx);
  }
  if (fresh) main.focus({ preventScroll: true });
}

window.addEventListener("hashchange", () => render(true));
render(true);
followPool();
poll();

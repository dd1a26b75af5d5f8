// The overview: health, instances, every type, the workers (paged), GPUs and recent events.

import { h, fill, table, pager, badge, ms, bytes, percent, text, sparkline, when } from "./ui.js";

const WORKERS_PER_PAGE = 50;

/** Why a type cannot start workers now, in words, or null. */
export function whyBlocked(name, stats, type) {
  const why = [];
  if (type && type.unavailable_reason) why.push(type.unavailable_reason);
  if (stats.cannot_start) why.push("gave up starting workers");
  if (stats.start_blocked) why.push(stats.start_blocked);
  if (type && type.gpu_wait && !why.includes(type.gpu_wait)) why.push(type.gpu_wait);
  return why.length ? why.join("; ") : null;
}

/**
 * A type's tasks finished per minute and the share that failed, from the page's counts
 * (`counts`: the oldest and newest of [{at, byType: {name: {finished, failed}}}] kept over
 * the last five minutes); null where the page has not watched long enough (10 s).
 */
export function rates(counts, name) {
  const first = counts[0], last = counts[counts.length - 1];
  const a = first && first.byType[name], b = last && last.byType[name];
  const minutes = first && last ? (last.at - first.at) / 60000 : 0;
  if (!a || !b || minutes < 10 / 60) return { perMinute: null, errorRate: null };
  const finished = b.finished - a.finished, failed = b.failed - a.failed;
  return { perMinute: finished / minutes, errorRate: finished > 0 ? failed / finished : null };
}

export const rate = (v) => (v === null ? "–" : v.toFixed(1));

/** What a scale answer says beyond "done": workers that wait for GPU room, and why. */
export function scaled(answer) {
  if (!answer || !answer.waiting) return null;
  return `${answer.workers} workers; ${answer.waiting} wait for room` + (answer.gpu_wait ? ` (${answer.gpu_wait})` : "");
}

export function scaleButtons(name, ctx) {
  const scale = (action) => ctx.act(`Scale ${action} ${name}`, () =>
    ctx.api.post(`/api/workers/scale/${encodeURIComponent(name)}`, { action, count: 1 }), scaled);
  return h("span", { class: "actions" },
    h("button", { type: "button", class: "small", "data-scale-up": name, "aria-label": `Scale ${name} up`, onclick: () => scale("up") }, "+1"),
    h("button", { type: "button", class: "small", "data-scale-down": name, "aria-label": `Scale ${name} down`, onclick: () => scale("down") }, "−1"));
}

function typesTable(ctx) {
  const { status, health, types } = ctx.state;
  const rows = Object.entries(status.by_type).map(([name, s]) => ({ name, s, t: (types && types.types[name]) || null,
    hl: health && health.types ? health.types[name] : null }));
  return table([
    ["Type", (r) => h("a", { href: `#/type/${encodeURIComponent(r.name)}` }, r.name)],
    ["Health", (r) => (r.hl ? badge(r.hl.status) : "–")],
    ["Workers live (idle)", (r) => `${r.s.total} (${r.s.available})`, "num"],
    ["Queued", (r) => r.s.queued, "num"],
    ["Running", (r) => r.s.busy, "num"],
    ["Done / failed", (r) => `${r.s.tasks_completed} / ${r.s.tasks_failed}`, "num opt"],
    ["Per min", (r) => rate(rates(ctx.state.counts, r.name).perMinute), "num opt"],
    ["Errors", (r) => { const e = rates(ctx.state.counts, r.name).errorRate; return e === null ? "–" : percent(100 * e); }, "num opt"],
    ["p50 / p95", (r) => `${ms(r.s.p50_task_ms)} / ${ms(r.s.p95_task_ms)}`, "num opt"],
    ["Oldest wait", (r) => ms(r.s.oldest_wait_ms), "num"],
    ["Dead", (r) => r.s.dead_letters, "num opt"],
    ["Cannot start", (r) => { const w = whyBlocked(r.name, r.s, r.t); return w ? h("span", { class: "reason" }, w) : "–"; }, "wrap"],
    ["Scale", (r) => scaleButtons(r.name, ctx)],
  ], rows);
}

/**
 * The workers one page shows: those of `type` (all when empty), `perPage` from `offset`,
 * which moves back to the last page when the list shrank under it. Answers the rows, the
 * offset used and how many there are in all.
 */
export function workerPage(workers, type, offset, perPage) {
  const all = workers.filter((w) => !type || w.task_type === type);
  const last = Math.max(0, Math.ceil(all.length / perPage) - 1) * perPage;
  const at = Math.min(offset, last);
  return { rows: all.slice(at, at + perPage), offset: at, total: all.length };
}

function workersSection(ctx) {
  const { state } = ctx;
  const usage = new Map((state.resources ? state.resources.workers : []).map((w) => [w.worker_id, w]));
  const { rows: page, offset, total } = workerPage(state.status.workers, state.workerType, state.workerOffset, WORKERS_PER_PAGE);
  state.workerOffset = offset;
  const hist = (id, key) => (state.history.get(id) || []).map((p) => p[key]);
  const filter = h("select", { id: "worker-type", "aria-label": "Show workers of type", onchange: (e) => {
    state.workerType = e.target.value;
    state.workerOffset = 0;
    ctx.refresh();
  } }, h("option", { value: "" }, "all types"),
  Object.keys(state.status.by_type).map((t) => h("option", { value: t, selected: t === state.workerType }, t)));
  const restart = (id) => ctx.act(`Restart ${id}`, () => ctx.api.post(`/api/workers/restart/${encodeURIComponent(id)}`));
  return [
    h("h2", {}, `Workers (${total}) `, filter),
    table([
      ["Worker", (w) => w.id],
      ["Type", (w) => w.task_type, "opt"],
      ["PID", (w) => text(w.pid), "num"],
      ["State", (w) => badge(w.state)],
      ["Task", (w) => (w.task_id ? h("a", { href: `#/task/${w.task_id}` }, w.task_id.slice(0, 8)) : "–")],
      ["Done", (w) => w.tasks_done, "num"],
      ["CPU", (w) => h("span", {}, percent(usage.get(w.id)?.cpu_percent), " ", sparkline(hist(w.id, "cpu"), `CPU of ${w.id}`)), "num"],
      ["RSS", (w) => h("span", {}, bytes(usage.get(w.id)?.memory_bytes), " ", sparkline(hist(w.id, "rss"), `memory of ${w.id}`)), "num"],
      ["GPU memory", (w) => (w.gpus.length ? bytes(usage.get(w.id)?.gpu_memory_bytes) : "–"), "num opt"],
      ["Up", (w) => ms(w.uptime_ms), "num opt"],
      ["", (w) => h("button", { type: "button", class: "small", "aria-label": `Restart ${w.id}`, onclick: () => restart(w.id) }, "Restart")],
    ], page),
    total > WORKERS_PER_PAGE ? pager(offset, WORKERS_PER_PAGE, total, (o) => {
      state.workerOffset = o;
      ctx.refresh();
    }, "Workers") : null,
  ];
}

function gpusSection(resources) {
  if (!resources || !resources.gpus || !resources.gpus.length) return null;
  return [
    h("h2", {}, resources.gpu && resources.gpu.simulated ? "GPUs (simulated)" : "GPUs"),
    table([
      ["GPU", (g) => `${g.index} ${g.uuid}`],
      ["Name", (g) => g.name, "opt"],
      ["State", (g) => (g.drained ? h("span", { class: "reason" }, `drained: ${g.drained}`) : "in use")],
      ["Used / reserved / total", (g) => `${bytes(g.memory_used_bytes)} / ${bytes(g.memory_reserved_bytes)} / ${bytes(g.memory_total_bytes)}`, "num"],
      ["Utilization", (g) => percent(g.utilization_percent), "num"],
    ], resources.gpus),
  ];
}

function eventsSection(events) {
  return [
    h("h2", {}, "Recent events"),
    h("div", { class: "card events", "aria-live": "off" }, events.length
      ? events.map((e) => h("div", {}, `${when(e.timestamp)} ${e.event} ${JSON.stringify(e.data)}`))
      : h("span", { class: "muted" }, "none since the page opened")),
  ];
}

export function overview(main, ctx) {
  const { status, health } = ctx.state;
  if (!status) {
    fill(main, h("p", { class: "muted" }, "Loading…"));
    return;
  }
  const figures = [
    ["Workers", `${status.busy} busy / ${status.total}`],
    ["Queued", Object.values(status.by_type).reduce((n, t) => n + t.queued, 0)],
    ["Completed", status.tasks_completed],
    ["Failed", status.tasks_failed],
    ["Mean task", ms(status.avg_task_ms)],
  ];
  const instances = status.instances || null;
  fill(main,
    h("h1", {}, "Overview"),
    health && Array.isArray(health.reasons) && health.reasons.length
      ? h("div", { class: "card" }, h("strong", {}, `Health: ${health.status}`), h("ul", {}, health.reasons.map((r) => h("li", { class: "reason" }, r))))
      : null,
    h("div", { class: "grid" }, figures.map(([k, v]) => h("div", { class: "card figure" }, h("div", { class: "muted" }, k), h("div", { class: "n" }, v)))),
    instances ? [h("h2", {}, "Instances"),
      status.redis ? h("p", {}, "Redis: ", badge(status.redis.status === "up" ? "healthy" : "unhealthy"), " ", status.redis.error ? h("span", { class: "reason" }, status.redis.error) : status.redis.status) : null,
      table([
        ["Instance", (i) => i.instance_id],
        ["Workers busy / live", (i) => `${i.busy} / ${i.workers}`, "num"],
        ["Tasks held", (i) => i.running, "num"],
        ["Types", (i) => i.types.join(", "), "wrap opt"],
        ["Started", (i) => when(i.started_at), "num opt"],
        ["Heartbeat", (i) => when(i.heartbeat_at), "num"],
      ], instances)] : null,
    h("h2", {}, "Types"),
    typesTable(ctx),
    workersSection(ctx),
    gpusSection(ctx.state.resources),
    eventsSection(ctx.state.events),
  );
}

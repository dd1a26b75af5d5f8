// One type: its figures and settings, its queue page by page, and its dead letters with a
// re-queue button each.

import { h, fill, table, pager, badge, ms, text } from "./ui.js";
import { whyBlocked, rates, rate, scaleButtons } from "./overview.js";

const PER_PAGE = 50;

export function typePage(main, name, ctx) {
  const enc = encodeURIComponent(name);
  let queueOffset = 0, deadOffset = 0, queue = null, dead = null, error = null;

  const load = async () => {
    try {
      [queue, dead] = await Promise.all([
        ctx.api.get(`/api/workers/queues/${enc}?offset=${queueOffset}&limit=${PER_PAGE}`),
        ctx.api.get(`/api/workers/dead-letters/${enc}`),
      ]);
      error = null;
      // The queue shrank under the page shown: go to its last page.
      if (queueOffset > 0 && queueOffset >= queue.length) {
        queueOffset = Math.max(0, Math.ceil(queue.length / PER_PAGE) - 1) * PER_PAGE;
        return load();
      }
    } catch (e) {
      error = e.message;
    }
    draw();
  };

  const requeue = async (id) => {
    await ctx.act(`Re-queue ${id.slice(0, 8)}`, () => ctx.api.post(`/api/tasks/${encodeURIComponent(id)}/requeue`));
    load();
  };

  const draw = () => {
    const s = ctx.state.status && ctx.state.status.by_type[name];
    const t = ctx.state.types && ctx.state.types.types[name];
    if (error && !queue) {
      fill(main, h("h1", {}, name), h("p", { class: "reason" }, error));
      return;
    }
    if (!s || !queue) {
      fill(main, h("h1", {}, name), h("p", { class: "muted" }, "Loading…"));
      return;
    }
    const r = rates(ctx.state.counts, name);
    const blocked = whyBlocked(name, s, t);
    const facts = [
      ["Workers", `${s.busy} busy, ${s.available} idle, ${s.total} live`],
      ["Queued", `${queue.length} (${queue.ready} ready)`],
      ["Oldest wait", ms(queue.oldest_wait_ms)],
      ["Completed / failed", `${s.tasks_completed} / ${s.tasks_failed}`],
      ["Rate", `${rate(r.perMinute)}/min` + (r.errorRate === null ? "" : `, ${(100 * r.errorRate).toFixed(0)}% failed`)],
      ["Last 5 min", `${s.recent_finished} finished, ${s.recent_failed} failed`],
      ["Duration p50 / p95", `${ms(s.p50_task_ms)} / ${ms(s.p95_task_ms)}`],
      ["Cannot start", blocked || "–"],
    ];
    if (t) {
      facts.push(["Limits", `max ${t.max_concurrent} workers, min ${t.min_workers}, memory ${t.memory_limit_mb} MB, timeout ${ms(t.timeout_ms)}, ${t.max_retries} retries`]);
      facts.push(["GPU", t.gpu_required ? `${t.gpus_per_worker ?? 1} per worker` + (t.gpu_memory_mb ? `, ${t.gpu_memory_mb} MB each` : ", whole GPUs") : "none"]);
      facts.push(["Executor", t.executor]);
    }
    const deadPage = dead.tasks.slice(deadOffset, deadOffset + PER_PAGE);
    fill(main,
      h("p", {}, h("a", { href: "#/" }, "← Overview")),
      h("h1", {}, name, " ", scaleButtons(name, ctx), " ",
        h("a", { href: `#/execute/${enc}` }, "Run a task")),
      error ? h("p", { class: "reason", role: "alert" }, `Not current: ${error}`) : null,
      h("dl", { class: "facts card" }, facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { class: k === "Cannot start" && blocked ? "reason" : null }, v)])),
      h("h2", {}, `Queue (${queue.length})`),
      table([
        ["#", (q) => q.position, "num"],
        ["Task", (q) => h("a", { href: `#/task/${q.id}` }, q.id)],
        ["Priority", (q) => q.priority, "num"],
        ["State", (q) => badge(q.state)],
        ["Attempts", (q) => q.attempts, "num"],
        ["Waited", (q) => ms(q.waited_ms), "num"],
      ], queue.tasks.map((q, i) => Object.assign({ position: queue.offset + i + 1 }, q))),
      queue.length > PER_PAGE || queueOffset > 0 ? pager(queueOffset, PER_PAGE, queue.length, (o) => {
        queueOffset = o;
        load();
      }, "Queue") : null,
      h("h2", {}, `Dead letters (${dead.tasks.length})`),
      table([
        ["Task", (d) => h("a", { href: `#/task/${d.id}` }, d.id)],
        ["Status", (d) => badge(d.status)],
        ["Attempts", (d) => d.attempts, "num"],
        ["Error", (d) => text(d.error), "wrap"],
        ["", (d) => h("button", { type: "button", class: "small", "data-requeue": d.id, "aria-label": `Re-queue ${d.id}`, onclick: () => requeue(d.id) }, "Re-queue")],
      ], deadPage),
      dead.tasks.length > PER_PAGE ? pager(deadOffset, PER_PAGE, dead.tasks.length, (o) => {
        deadOffset = o;
        draw();
      }, "Dead letters") : null,
    );
  };

  draw();
  load();
  return { update: load };
}

// One task, live from its event stream; and the form that runs a task.

import { h, fill, badge, ms, bytes, when, text, progressBar } from "./ui.js";

const FINAL = ["completed", "failed", "dead", "timed_out", "cancelled"];

export function taskPage(main, id, ctx) {
  let record = null, progress = null, error = null, live = "connecting";

  const draw = () => {
    if (!record) {
      fill(main, h("p", {}, h("a", { href: "#/" }, "← Overview")), h("h1", {}, "Task"),
        h("p", { class: error ? "reason" : "muted" }, error || "Loading…"));
      return;
    }
    const p = progress || record.progress;
    const ended = FINAL.includes(record.status);
    const res = record.resources;
    const facts = [
      ["Id", record.id],
      ["Type", h("a", { href: `#/type/${encodeURIComponent(record.type)}` }, record.type)],
      ["Status", badge(record.status)],
      ["Attempts", `${record.attempts} of ${record.max_retries + 1}`],
      ["Priority", record.priority],
      ["Created", when(record.created_at)],
      ["Started", when(record.started_at)],
      ["Finished", when(record.finished_at)],
      ["Worker", record.worker_id ? `${record.worker_id} (pid ${text(record.worker_pid)})` : "–"],
    ];
    if (res) {
      facts.push(["Used", `${ms(res.wall_ms)} wall, ${ms(res.cpu_ms)} CPU, peak RSS ${bytes(res.peak_rss_bytes)}` +
        (res.gpus && res.gpus.length ? `, GPUs ${res.gpus.join(", ")}, peak GPU memory ${bytes(res.peak_gpu_memory_bytes)}` : "")]);
    }
    const cancel = () => ctx.act(`Cancel ${id.slice(0, 8)}`, () => ctx.api.del(`/api/tasks/${encodeURIComponent(id)}`))
      .then((r) => { if (r) { record = r; draw(); } });
    const requeue = () => ctx.act(`Re-queue ${id.slice(0, 8)}`, () => ctx.api.post(`/api/tasks/${encodeURIComponent(id)}/requeue`))
      .then((r) => { if (r) reconnect(); });
    fill(main,
      h("p", {}, h("a", { href: "#/" }, "← Overview")),
      h("h1", {}, "Task ", h("span", { class: "muted" }, id.slice(0, 8)), " ", h("span", { class: "muted", id: "task-live" }, live)),
      h("div", { class: "card" },
        h("p", { id: "task-stage" }, p ? `${Number(p.progress).toFixed(0)}%${p.stage ? ` · ${p.stage}` : ""}` : ended ? "" : "no progress reported yet"),
        progressBar(p ? p.progress : ended && record.status === "completed" ? 100 : 0, "task progress")),
      h("dl", { class: "facts card" }, facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      h("div", { class: "actions" },
        ended ? null : h("button", { type: "button", class: "danger", id: "task-cancel", onclick: cancel }, "Cancel"),
        record.status === "dead" || record.status === "timed_out" ? h("button", { type: "button", id: "task-requeue", onclick: requeue }, "Re-queue") : null),
      record.result !== null && record.result !== undefined ? [h("h2", {}, "Result"), h("pre", { id: "task-result" }, JSON.stringify(record.result, null, 2))] : null,
      record.error ? [h("h2", {}, "Error"), h("pre", { class: "reason", id: "task-error" }, record.error)] : null,
    );
  };

  let sub = null;
  const reconnect = () => {
    if (sub) sub.close();
    progress = null;
    sub = ctx.api.stream(`/api/tasks/${encodeURIComponent(id)}/events`, (msg) => {
      if (msg.event === "status" || msg.event === "result") {
        record = msg.data;
        if (msg.event === "result") progress = null;
      } else if (msg.event === "progress") {
        progress = { progress: msg.data.progress, stage: msg.data.stage };
      }
      draw();
    }, (s) => {
      live = s === "live" ? "live" : s === "ended" ? "" : "reconnecting…";
      const el = document.getElementById("task-live");
      if (el) el.textContent = live;
    });
  };

  ctx.api.get(`/api/tasks/${encodeURIComponent(id)}`).then((r) => {
    if (!record) record = r;
    draw();
  }, (e) => {
    error = e.status === 404 ? `No task ${id} (records are kept for a while after the end).` : e.message;
    draw();
  });
  draw();
  reconnect();
  return { close: () => sub && sub.close() };
}

export function executePage(main, ctx, preset) {
  const types = ctx.state.status ? Object.keys(ctx.state.status.by_type) : [];
  const type = h("select", { id: "execute-type", name: "type", required: true },
    types.map((t) => h("option", { value: t, selected: t === preset }, t)));
  const data = h("textarea", { id: "execute-data", name: "data", spellcheck: "false" }, '{"op": "sleep", "ms": 1000}');
  const priority = h("input", { id: "execute-priority", name: "priority", type: "number", value: "0", step: "1" });
  const retries = h("input", { id: "execute-retries", name: "max_retries", type: "number", min: "0", step: "1", placeholder: "type default" });
  const problem = h("p", { class: "reason", role: "alert" });
  const submit = async (e) => {
    e.preventDefault();
    let parsed;
    try {
      parsed = JSON.parse(data.value);
    } catch (err) {
      problem.textContent = `The data is not JSON: ${err.message}`;
      data.focus();
      return;
    }
    problem.textContent = "";
    const options = { wait: false, priority: Number(priority.value || 0) };
    if (retries.value !== "") options.max_retries = Number(retries.value);
    const answer = await ctx.act(`Run ${type.value}`, () => ctx.api.post("/api/workers/execute", { type: type.value, data: parsed, options }));
    if (answer && answer.id) ctx.go(`#/task/${answer.id}`);
  };
  fill(main,
    h("h1", {}, "Run a task"),
    h("form", { class: "stack card", id: "execute-form", onsubmit: submit },
      h("label", { for: "execute-type" }, "Type"), type,
      h("label", { for: "execute-data" }, "Data (JSON, sent to the worker as the task's data)"), data,
      h("label", { for: "execute-priority" }, "Priority (higher runs first)"), priority,
      h("label", { for: "execute-retries" }, "Retries"), retries,
      problem,
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary", id: "execute-submit" }, "Run"))));
  return null;
}

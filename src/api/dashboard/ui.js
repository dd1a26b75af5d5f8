// Small DOM helpers. Everything the server sends is put in the page as text, never as HTML.

/** `h("td", {class: "num"}, "3")`: an element with attributes, and children (text or nodes). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export const text = (v) => (v === null || v === undefined ? "–" : String(v));

export function ms(v) {
  if (v === null || v === undefined) return "–";
  if (v < 1000) return `${Math.round(v)} ms`;
  if (v < 60000) return `${(v / 1000).toFixed(1)} s`;
  if (v < 3600000) return `${Math.floor(v / 60000)} min ${Math.round((v % 60000) / 1000)} s`;
  return `${Math.floor(v / 3600000)} h ${Math.round((v % 3600000) / 60000)} min`;
}

export function bytes(v) {
  if (v === null || v === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export const percent = (v) => (v === null || v === undefined ? "–" : `${Number(v).toFixed(0)}%`);

export const when = (unixMs) => (unixMs ? new Date(unixMs).toLocaleTimeString() : "–");

export const badge = (word) => h("span", { class: `badge ${word}` }, word);

/** A progress bar for 0–100 (its width set through the CSSOM, which the page's policy allows). */
export function progressBar(value, label) {
  const inner = h("div");
  const pct = Math.max(0, Math.min(100, Number(value) || 0));
  inner.style.width = `${pct}%`;
  return h("div", { class: "progress", role: "progressbar", "aria-valuemin": 0, "aria-valuemax": 100,
    "aria-valuenow": pct, "aria-label": label || "progress" }, inner);
}

/** A sparkline of the numbers in `values` (the latest last). */
export function sparkline(values, label) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", "0 0 80 20");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const nums = values.filter((v) => typeof v === "number");
  if (nums.length > 1) {
    const max = Math.max(...nums) || 1;
    const step = 80 / (nums.length - 1);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", nums.map((v, i) => `${(i * step).toFixed(1)},${(19 - (v / max) * 18).toFixed(1)}`).join(" "));
    svg.append(line);
  }
  return svg;
}

/** A table: `columns` are [title, cell(row), classes]; `rows` the items of this page. */
export function table(columns, rows, caption) {
  return h("div", { class: "scroll" },
    h("table", {},
      caption ? h("caption", { class: "muted" }, caption) : null,
      h("thead", {}, h("tr", {}, columns.map(([title, , cls]) => h("th", { class: cls, scope: "col" }, title)))),
      h("tbody", {}, rows.length
        ? rows.map((row) => h("tr", {}, columns.map(([, cell, cls]) => h("td", { class: cls }, cell(row)))))
        : h("tr", {}, h("td", { colspan: columns.length, class: "muted" }, "none")))));
}

/** "1–50 of 10000" with previous/next buttons; `go(offset)` turns the page. */
export function pager(offset, limit, total, go, what) {
  const last = Math.min(offset + limit, total);
  return h("div", { class: "pager", role: "navigation", "aria-label": `${what} pages` },
    h("button", { type: "button", class: "small", disabled: offset === 0, onclick: () => go(Math.max(0, offset - limit)) }, "← Previous"),
    h("span", {}, total ? `${offset + 1}–${last} of ${total}` : "none"),
    h("button", { type: "button", class: "small", disabled: last >= total, onclick: () => go(offset + limit) }, "Next →"));
}

/**
 * Replaces the children of `el`. The element that had the keyboard focus keeps it when the
 * new content has its like (same id, or same aria-label), so live updates do not throw a
 * keyboard user back to the top.
 */
export function fill(el, ...children) {
  const active = document.activeElement;
  const key = active && el.contains(active) && active !== el
    ? (active.id && `#${CSS.escape(active.id)}`) ||
      (active.getAttribute("aria-label") && `[aria-label="${CSS.escape(active.getAttribute("aria-label"))}"]`)
    : null;
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined));
  if (key) {
    const again = el.querySelector(key);
    if (again) again.focus({ preventScroll: true });
  }
}

// The Steergate dashboard: four pages over the gateway's own API. The
// browser carries the API key as the cookie /ui/login set (or none when the
// gateway is open), so every call here is same-origin.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
};
const COLORS = ["#2457a6", "#c2571a", "#2e8b57", "#8e44ad", "#b8860b", "#4a6572"];
const fmt = (x, d = 3) => (x === null || x === undefined || Number.isNaN(x)) ? "–" : Number(x).toPrecision(d);
const interval = (ci) => ci && ci.lo !== null ? `[${fmt(ci.lo)}, ${fmt(ci.hi)}]` : "–";

let config = null;

function showError(msg) {
  const p = $("#error");
  p.textContent = msg;
  p.hidden = !msg;
}

async function api(path, opts = {}) {
  const r = await fetch(path, { credentials: "same-origin", ...opts });
  if (r.status === 204) return null;
  const body = await r.json().catch(() => null);
  if (!r.ok) {
    const msg = body && body.error ? body.error.message : `HTTP ${r.status}`;
    const err = new Error(msg);
    err.status = r.status;
    throw err;
  }
  return body;
}

// ---- charts (SVG) ----

const SVGNS = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

// frame clears an SVG and returns scales for the domains given.
function frame(svg, xs, ys, xLabel, yLabel) {
  svg.replaceChildren();
  const W = svg.clientWidth || 420, H = svg.clientHeight || 240, L = 52, R = 10, T = 24, B = 34;
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (!(x1 > x0)) { x0 -= 1; x1 += 1; }
  if (!(y1 > y0)) { y0 -= 1; y1 += 1; }
  const sx = (x) => L + (x - x0) / (x1 - x0) * (W - L - R);
  const sy = (y) => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  svg.append(svgEl("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, stroke: "#999" }));
  svg.append(svgEl("line", { x1: L, y1: T, x2: L, y2: H - B, stroke: "#999" }));
  for (const [v, x, y, anchor] of [[y0, L - 4, sy(y0), "end"], [y1, L - 4, sy(y1) + 8, "end"]]) {
    const t = svgEl("text", { x, y, "text-anchor": anchor });
    t.textContent = fmt(v);
    svg.append(t);
  }
  const xl = svgEl("text", { x: (L + W - R) / 2, y: H - 6, "text-anchor": "middle" });
  xl.textContent = xLabel;
  const yl = svgEl("text", { x: L, y: 12, "text-anchor": "start" });
  yl.textContent = yLabel;
  svg.append(xl, yl);
  return { sx, sy, W, H, L, R, T, B };
}

function legend(svg, names, f) {
  names.forEach((n, i) => {
    const t = svgEl("text", { x: f.W - f.R - 4, y: f.T + 12 + 13 * i, "text-anchor": "end", fill: COLORS[i % COLORS.length] });
    t.style.fill = COLORS[i % COLORS.length];
    t.textContent = n;
    svg.append(t);
  });
}

function noData(svg, what) {
  svg.replaceChildren();
  const t = svgEl("text", { x: 20, y: 40 });
  t.textContent = `no ${what} yet`;
  svg.append(t);
}

function seriesChart(svg, arms) {
  const pts = arms.flatMap((a) => (a.series || []).filter((p) => p.mean !== null));
  if (!pts.length) return noData(svg, "outcomes");
  const ys = pts.flatMap((p) => [p.mean, p.ci.lo ?? p.mean, p.ci.hi ?? p.mean]);
  const f = frame(svg, pts.map((p) => p.t), ys, "time", "mean outcome");
  arms.forEach((a, i) => {
    const s = (a.series || []).filter((p) => p.mean !== null);
    const c = COLORS[i % COLORS.length];
    const band = s.filter((p) => p.ci.lo !== null);
    if (band.length > 1) {
      const top = band.map((p) => `${f.sx(p.t)},${f.sy(p.ci.hi)}`);
      const bottom = band.slice().reverse().map((p) => `${f.sx(p.t)},${f.sy(p.ci.lo)}`);
      svg.append(svgEl("polygon", { points: top.concat(bottom).join(" "), fill: c, "fill-opacity": 0.15 }));
    }
    svg.append(svgEl("polyline", { points: s.map((p) => `${f.sx(p.t)},${f.sy(p.mean)}`).join(" "), fill: "none", stroke: c, "stroke-width": 2 }));
    for (const p of s) {
      svg.append(svgEl("circle", { cx: f.sx(p.t), cy: f.sy(p.mean), r: 2.5, fill: c }));
      if (p.ci.lo !== null) svg.append(svgEl("line", { x1: f.sx(p.t), x2: f.sx(p.t), y1: f.sy(p.ci.lo), y2: f.sy(p.ci.hi), stroke: c, "stroke-opacity": 0.6 }));
    }
  });
  legend(svg, arms.map((a) => a.name), f);
}

function histogram(svg, arms) {
  const all = arms.flatMap((a) => a.recent.map((r) => r.outcome));
  if (!all.length) return noData(svg, "outcomes");
  const lo = Math.min(...all), hi = Math.max(...all), bins = 12;
  const width = (hi - lo) / bins || 1;
  const counts = arms.map((a) => {
    const c = new Array(bins).fill(0);
    for (const r of a.recent) c[Math.min(bins - 1, Math.floor((r.outcome - lo) / width))]++;
    return c.map((n) => n / Math.max(1, a.recent.length));
  });
  const f = frame(svg, [lo, lo + bins * width], [0, ...counts.flat()], "outcome", "share");
  const bw = (f.sx(lo + width) - f.sx(lo)) / arms.length;
  counts.forEach((c, i) => c.forEach((v, b) => {
    const x = f.sx(lo + b * width) + i * bw;
    svg.append(svgEl("rect", { x, y: f.sy(v), width: Math.max(1, bw - 1), height: f.sy(0) - f.sy(v), fill: COLORS[i % COLORS.length], "fill-opacity": 0.8 }));
  }));
  legend(svg, arms.map((a) => a.name), f);
}

function scatter(svg, arms) {
  const pts = arms.flatMap((a) => a.recent);
  if (!pts.length) return noData(svg, "outcomes");
  const f = frame(svg, pts.map((p) => p.tokens), pts.map((p) => p.outcome), "backend tokens", "outcome");
  arms.forEach((a, i) => {
    for (const p of a.recent) {
      svg.append(svgEl("circle", { cx: f.sx(p.tokens), cy: f.sy(p.outcome), r: 3, fill: COLORS[i % COLORS.length], "fill-opacity": 0.5 }));
    }
  });
  legend(svg, arms.map((a) => a.name), f);
}

function costBars(svg, arms) {
  const vals = arms.map((a) => a.cost.tokens_per_request ?? 0);
  if (!arms.some((a) => a.requests > 0)) return noData(svg, "requests");
  const f = frame(svg, [0, arms.length], [0, ...vals], "arm", "tokens per request");
  const bw = (f.sx(1) - f.sx(0)) * 0.6;
  arms.forEach((a, i) => {
    const x = f.sx(i) + (f.sx(1) - f.sx(0) - bw) / 2;
    svg.append(svgEl("rect", { x, y: f.sy(vals[i]), width: bw, height: f.sy(0) - f.sy(vals[i]), fill: COLORS[i % COLORS.length] }));
    const t = svgEl("text", { x: x + bw / 2, y: f.sy(vals[i]) - 3, "text-anchor": "middle" });
    t.textContent = `${a.name}: ${fmt(vals[i])}`;
    svg.append(t);
  });
}

// ---- experiments ----

let expTimer = null;

async function experimentsPage() {
  const sel = $("#exp-select");
  const list = await api("/v1/experiments");
  $("#exp-empty").hidden = list.data.length > 0;
  if (!sel.options.length) {
    for (const e of list.data) sel.append(el("option", { value: e.name }, e.name));
    sel.onchange = () => showExperiment(sel.value);
  }
  if (sel.value) await showExperiment(sel.value);
  clearInterval(expTimer);
  expTimer = setInterval(() => { if (location.hash === "#experiments" && sel.value) showExperiment(sel.value).catch((e) => showError(e.message)); }, 5000);
}

async function showExperiment(name) {
  const r = await api(`/v1/experiments/${encodeURIComponent(name)}`);
  $("#exp-meta").textContent = `${r.state} · models ${r.models.join(", ")} · by ${r.unit} · outcome ${r.outcome}${r.outcome_reward ? " (" + r.outcome_reward + ")" : ""} · control ${r.control} · ${r.allocation} allocation`;
  $("#exp-verdict").textContent = r.verdict;
  const t = $("#exp-table");
  t.replaceChildren(el("tr", {}, ...["arm", "share", "requests", "errors", "outcomes (units)", "mean [CI]", "difference [always-valid CS]", "Welch p", "verdict", "win rate [Wilson]", "tokens/req", "samples/req", "latency p50/p95 s"].map((h) => el("th", {}, h))));
  for (const a of r.arms) {
    const d = a.difference;
    t.append(el("tr", { "data-arm": a.name },
      el("td", {}, a.name + (a.control ? " (control)" : "")),
      el("td", {}, fmt(r.shares[a.name], 2)),
      el("td", {}, a.requests),
      el("td", {}, fmt(a.error_rate, 2)),
      el("td", {}, `${a.outcome.n} (${a.outcome.units})`),
      el("td", {}, `${fmt(a.outcome.mean)} ${interval(a.outcome.ci)}`),
      el("td", {}, d ? `${fmt(d.estimate)} ${interval(d.confidence_sequence)}` : "–"),
      el("td", {}, d ? fmt(d.welch.p, 2) : "–"),
      el("td", {}, d ? d.verdict : "–"),
      el("td", {}, `${fmt(a.feedback.win_rate, 2)} ${interval(a.feedback.ci)} (${a.feedback.wins}/${a.feedback.wins + a.feedback.losses})`),
      el("td", {}, fmt(a.cost.tokens_per_request)),
      el("td", {}, fmt(a.cost.samples_per_request)),
      el("td", {}, `${fmt(a.cost.latency_p50_s, 2)} / ${fmt(a.cost.latency_p95_s, 2)}`)));
  }
  seriesChart($("#chart-series"), r.arms);
  histogram($("#chart-hist"), r.arms);
  scatter($("#chart-scatter"), r.arms);
  costBars($("#chart-cost"), r.arms);
}

// ---- live requests ----

let liveSource = null;

function objectives(c) {
  if (!c) return "";
  const o = Object.entries(c.objectives || {}).map(([k, v]) => `${k} ${fmt(v, 2)}`).join(", ");
  return `#${c.index} u=${fmt(c.utility)} (${o})`;
}

function livePage() {
  if (liveSource) return;
  liveSource = new EventSource("/ui/api/live");
  // A view that reconnects is sent the kept requests again: each shows once.
  const seen = new Set();
  liveSource.onmessage = (m) => {
    const ev = JSON.parse(m.data);
    const key = `${ev.request_id}|${ev.time}`;
    if (seen.has(key)) return;
    seen.add(key);
    const rows = $("#live-rows");
    const chosen = (ev.candidates || []).find((c) => c.chosen);
    const runner = (ev.candidates || []).find((c) => !c.chosen);
    rows.prepend(el("tr", { "data-key": key },
      el("td", {}, new Date(ev.time).toLocaleTimeString()),
      el("td", {}, ev.model),
      el("td", {}, ev.strategy),
      el("td", {}, ev.arm || ""),
      el("td", {}, ev.status),
      el("td", {}, fmt(ev.latency_ms)),
      el("td", {}, ev.tokens),
      el("td", {}, ev.samples),
      el("td", {}, ev.cache || ""),
      el("td", { class: "objs" }, objectives(chosen)),
      el("td", { class: "objs" }, objectives(runner))));
    while (rows.children.length > 200) {
      seen.delete(rows.lastChild.dataset.key);
      rows.lastChild.remove();
    }
    $("#live-count").textContent = rows.children.length;
  };
  liveSource.onerror = () => { /* EventSource reconnects by itself */ };
}

// ---- playground ----

function fillStrategies() {
  for (const [i, sel] of document.querySelectorAll(".pg-strategy").entries()) {
    if (sel.options.length) continue;
    for (const s of config.strategies) sel.append(el("option", { value: s }, s));
    sel.value = i === 0 ? "best_of_n" : "adaptive";
  }
  const m = $("#pg-model");
  if (!m.options.length) for (const name of config.models) m.append(el("option", { value: name }, name));
}

// runPane streams one strategy's answer into its pane.
async function runPane(pane, prompt) {
  const text = $(".pg-text", pane), cost = $(".pg-cost", pane), table = $(".pg-candidates", pane);
  text.textContent = "";
  cost.textContent = "running…";
  table.replaceChildren();
  let params;
  try {
    params = JSON.parse($(".pg-params", pane).value || "{}");
  } catch (e) {
    cost.textContent = `parameters are not JSON: ${e.message}`;
    return;
  }
  const steering = { ...params, strategy: $(".pg-strategy", pane).value };
  const body = {
    model: $("#pg-model").value, stream: true, stream_options: { include_usage: true },
    max_tokens: Number($("#pg-max").value), seed: Number($("#pg-seed").value),
    messages: [{ role: "user", content: prompt }], steering,
  };
  const started = performance.now();
  const r = await fetch("/v1/chat/completions", { method: "POST", credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!r.ok) {
    const e = await r.json().catch(() => null);
    cost.textContent = `error ${r.status}: ${e && e.error ? e.error.message : ""}`;
    return;
  }
  const reader = r.body.getReader(), dec = new TextDecoder();
  let buf = "", usage = null, report = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n\n")) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 2);
      if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
      const chunk = JSON.parse(line.slice(6));
      if (chunk.error) { cost.textContent = `error: ${chunk.error.message}`; return; }
      for (const c of chunk.choices || []) if (c.index === 0 && c.delta && c.delta.content) text.textContent += c.delta.content;
      if (chunk.usage) usage = chunk.usage;
      if (chunk.steering) report = chunk.steering;
    }
  }
  const ms = performance.now() - started;
  cost.textContent = `${usage ? usage.total_tokens : "?"} backend tokens · ${report ? report.samples_used : 1} samples · ${fmt(ms / 1000, 2)} s`;
  if (report && report.candidates) {
    const objs = Object.keys(report.candidates[0] ? report.candidates[0].objectives || {} : {});
    table.append(el("tr", {}, ...["#", "chosen", "utility", "tokens", ...objs].map((h) => el("th", {}, h))));
    for (const c of report.candidates) {
      table.append(el("tr", {}, el("td", {}, c.index), el("td", {}, c.chosen ? "✓" : ""), el("td", {}, fmt(c.utility)),
        el("td", {}, c.completion_tokens), ...objs.map((o) => el("td", {}, fmt((c.objectives || {})[o], 2)))));
    }
  }
}

function playgroundPage() {
  fillStrategies();
  $("#pg-run").onclick = async () => {
    showError("");
    const prompt = $("#pg-prompt").value;
    await Promise.all(["#pane-a", "#pane-b"].map((p) => runPane($(p), prompt).catch((e) => showError(e.message))));
  };
}

// ---- preferences ----

function prefURL() {
  const user = encodeURIComponent($("#pref-user").value.trim());
  return `/v1/users/${user}/preferences?reward=${encodeURIComponent($("#pref-reward").value)}`;
}

// sliders draws one slider per objective of the chosen reward. An
// objective the user has no weight for starts at the reward's default and
// is saved only once moved, so that the route's weight keeps applying to
// the objectives nobody set.
function sliders(stored) {
  const reward = config.rewards.find((r) => r.name === $("#pref-reward").value);
  const box = $("#pref-sliders");
  box.replaceChildren();
  for (const o of reward.objectives) {
    const set = stored && o in stored;
    const v = set ? stored[o] : (reward.weights[o] ?? 0);
    const input = el("input", { type: "range", min: -config.max_weight, max: config.max_weight, step: 0.1, value: v, "data-objective": o });
    if (set) input.dataset.set = "1";
    const out = el("output", {}, fmt(v));
    const note = el("span", { class: "muted" }, set ? `stored ${fmt(stored[o])}` : "not set: the route's weight applies");
    input.oninput = () => {
      input.dataset.set = "1";
      out.textContent = fmt(Number(input.value));
      note.textContent = "changed: save to store";
    };
    box.append(el("label", {}, el("span", {}, o), input, out, note));
  }
}

let prefLoads = 0;

async function loadPrefs() {
  const user = $("#pref-user").value.trim();
  const mine = ++prefLoads;
  const p = await api(`/ui/api/preferences?user=${encodeURIComponent(user)}&reward=${encodeURIComponent($("#pref-reward").value)}`);
  if (mine !== prefLoads) return; // a later load (another user or reward) wins
  $("#pref-delete").disabled = !p.stored;
  if (!p.stored) {
    sliders(null);
    $("#pref-status").textContent = `${p.user} has no preferences in tenant ${p.tenant}: the route's weights apply`;
    return;
  }
  $("#pref-normalize").checked = p.normalize;
  sliders(p.weights);
  $("#pref-status").textContent = `stored for ${p.user} in tenant ${p.tenant}: ${p.updates} updates learned from feedback`;
}

function preferencesPage() {
  const sel = $("#pref-reward");
  if (!sel.options.length) {
    for (const r of config.rewards) sel.append(el("option", { value: r.name }, r.name));
    sel.value = config.default_reward || (config.rewards[0] || {}).name;
  }
  $("#pref-load").onclick = () => loadPrefs().catch((e) => showError(e.message));
  sel.onchange = $("#pref-load").onclick;
  $("#pref-save").onclick = async () => {
    showError("");
    const weights = {};
    for (const i of document.querySelectorAll("#pref-sliders input[data-set]")) weights[i.dataset.objective] = Number(i.value);
    if (!Object.keys(weights).length) { showError("move a slider first: nothing is set"); return; }
    try {
      const p = await api(prefURL(), { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ weights, normalize: $("#pref-normalize").checked }) });
      sliders(p.weights);
      $("#pref-delete").disabled = false;
      $("#pref-status").textContent = `saved for ${p.user} in tenant ${p.tenant}: ${p.updates} updates learned from feedback`;
    } catch (e) { showError(e.message); }
  };
  $("#pref-delete").onclick = async () => {
    // JSON, as every call that changes something: the cookie counts on no other.
    try { await api(prefURL(), { method: "DELETE", headers: { "Content-Type": "application/json" } }); } catch (e) { showError(e.message); }
    await loadPrefs().catch((e) => showError(e.message));
  };
  return loadPrefs();
}

// ---- navigation ----

const pages = { experiments: experimentsPage, live: livePage, playground: playgroundPage, preferences: preferencesPage };

async function route() {
  const name = (location.hash || "#experiments").slice(1);
  const page = pages[name] ? name : "experiments";
  for (const s of document.querySelectorAll(".page")) s.hidden = s.id !== `page-${page}`;
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  showError("");
  try {
    await pages[page]();
  } catch (e) {
    showError(e.message);
  }
}

async function main() {
  config = await api("/ui/api/config");
  $("#who").textContent = config.auth ? `tenant ${config.identity.tenant} (${config.identity.role})` : "open gateway (no API keys)";
  window.addEventListener("hashchange", route);
  await route();
}

main().catch((e) => showError(e.message));

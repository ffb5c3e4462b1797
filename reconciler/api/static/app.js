// tt dashboard: reads the town through /v1 and follows /v1/events/stream; no framework, no
// build step. A token (tt serve with TT_API_TOKEN) comes from the page's #token=… once and is
// kept in this tab's sessionStorage; the stream is read with fetch so the token goes as a header.
"use strict";

const STATES = ["completed", "running", "ready", "blocked", "retrying", "awaiting_approval",
  "failed", "upstream_failed", "cancelled", "skipped", "unapplied"];
const MAX_NODES = 400; // more than this is drawn as counts: a browser is not a 10,000-node canvas
const MAX_EVENTS = 300;
const $ = (id) => document.getElementById(id);

const token = (() => {
  const m = location.hash.match(/token=([^&]+)/);
  if (m) {
    let value = m[1];
    try { value = decodeURIComponent(value); } catch (err) { /* not %-encoded: as given */ }
    sessionStorage.setItem("tt-token", value);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem("tt-token");
})();

function headers(extra) {
  const h = Object.assign({ Accept: "application/json" }, extra || {});
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  const res = await fetch("v1/" + path, opts);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || res.status + " " + res.statusText);
  return body;
}

function text(el, value) { el.textContent = value == null ? "" : String(value); return el; }
function make(tag, attrs, content) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  if (content != null) text(el, content);
  return el;
}
function svg(tag, attrs) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}
function clock(ts) { return ts ? new Date(ts * 1000).toLocaleTimeString() : "-"; }
function took(s) {
  if (s == null) return "-";
  return s < 60 ? s.toFixed(1) + "s" : Math.floor(s / 60) + "m" + Math.round(s % 60) + "s";
}

// -- the DAG --------------------------------------------------------------------------------

let graph = null;
let selected = null;

function layers(tasks, edges) {
  // Longest path from the roots; a group sits after its members (it completes when they do).
  const into = new Map(tasks.map((t) => [t.id, []]));
  for (const e of edges) if (into.has(e.to)) into.get(e.to).push(e.from);
  for (const t of tasks) for (const c of t.children || []) if (into.has(t.id)) into.get(t.id).push(c);
  const level = new Map();
  const visiting = new Set();
  function depth(id) {
    if (level.has(id)) return level.get(id);
    if (visiting.has(id)) return 0; // never: the loader refuses cycles
    visiting.add(id);
    let d = 0;
    for (const p of into.get(id) || []) if (into.has(p)) d = Math.max(d, depth(p) + 1);
    visiting.delete(id);
    level.set(id, d);
    return d;
  }
  tasks.forEach((t) => depth(t.id));
  return level;
}

function drawGraph() {
  const root = $("dag");
  root.replaceChildren();
  if (!graph || !graph.tasks) return;
  const tasks = graph.tasks;
  const note = $("dag-note");
  if (tasks.length > MAX_NODES) {
    root.setAttribute("width", 0); root.setAttribute("height", 0);
    text(note, tasks.length + " tasks: too many to draw; counts above, `tt graph` in a terminal.");
    return;
  }
  text(note, tasks.length ? "" : "No tasks. Add one with tt assign AGENT \"…\".");
  const level = layers(tasks, graph.edges);
  const columns = new Map();
  for (const t of tasks) {
    const l = level.get(t.id);
    if (!columns.has(l)) columns.set(l, []);
    columns.get(l).push(t);
  }
  const W = 150, H = 46, GX = 40, GY = 12, PAD = 10;
  const at = new Map();
  let maxRows = 0;
  for (const [l, col] of columns) {
    col.forEach((t, i) => at.set(t.id, { x: PAD + l * (W + GX), y: PAD + i * (H + GY) }));
    maxRows = Math.max(maxRows, col.length);
  }
  const width = PAD * 2 + columns.size * (W + GX) - GX;
  const height = PAD * 2 + maxRows * (H + GY) - GY;
  root.setAttribute("width", Math.max(width, 0));
  root.setAttribute("height", Math.max(height, 0));
  root.setAttribute("viewBox", `0 0 ${Math.max(width, 1)} ${Math.max(height, 1)}`);
  const edge = (from, to, kind) => {
    const a = at.get(from), b = at.get(to);
    if (!a || !b) return;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
    const path = svg("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`,
      class: "edge " + kind, "marker-end": "url(#arrow)" });
    root.appendChild(path);
  };
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  marker.appendChild(svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#868e96" }));
  defs.appendChild(marker);
  root.appendChild(defs);
  for (const e of graph.edges) edge(e.from, e.to, e.kind);
  for (const t of tasks) for (const c of t.children || []) edge(c, t.id, "member");
  for (const t of tasks) {
    const p = at.get(t.id);
    const g = svg("g", { class: `node ${t.kind}` + (t.id === selected ? " selected" : ""),
      transform: `translate(${p.x},${p.y})`, "data-id": t.id, "data-state": t.state,
      tabindex: 0, role: "button" });
    const rect = svg("rect", { width: W, height: H, fill: `var(--${t.state}, #fff)` });
    const title = svg("title");
    text(title, `${t.id}: ${t.state}${t.description ? "\n" + t.description : ""}`);
    const name = svg("text", { x: 8, y: 18 });
    text(name, t.id.length > 19 ? t.id.slice(0, 18) + "…" : t.id);
    const sub = svg("text", { x: 8, y: 36, class: "sub" });
    text(sub, t.state + (t.agent ? " · " + t.agent : "") + (t.kind !== "work" ? " · " + t.kind : ""));
    g.append(title, rect, name, sub);
    g.addEventListener("click", () => openTask(t.id));
    g.addEventListener("keydown", (ev) => { if (ev.key === "Enter") openTask(t.id); });
    root.appendChild(g);
  }
}

function drawSummary() {
  if (!graph) return;
  const parts = Object.entries(graph.counts).sort().map(([s, n]) => `${n} ${s}`);
  text($("summary"), `${graph.total} tasks` + (parts.length ? ": " + parts.join(", ") : ""));
}

function drawLegend() {
  const legend = $("legend");
  for (const s of STATES) {
    const item = make("span", {}, s);
    item.style.setProperty("--c", `var(--${s})`); // not a style attribute: the CSP refuses those
    legend.appendChild(item);
  }
}

// Above MAX_NODES the graph is not drawn: later reads ask only for the counts (a 10,000-task
// graph is megabytes); a town that shrank below it again is read whole once more.
let countsOnly = false;
let graphLoadedAt = 0;

async function loadGraph() {
  graphLoadedAt = Date.now();
  if (countsOnly) {
    const c = await api("graph?counts=1");
    if (c.total > MAX_NODES) {
      graph = Object.assign(graph || {}, { town: c.town, counts: c.counts, total: c.total });
      drawSummary();
      return;
    }
  }
  graph = await api("graph");
  graph.total = graph.tasks.length;
  countsOnly = graph.total > MAX_NODES;
  text($("town-name"), graph.town || "town");
  document.title = `tt · ${graph.town}`;
  drawSummary();
  drawGraph();
  if (selected) loadTask(selected);
}

// A task event says the task's new state: the node changes in place, nothing is fetched.
const EVENT_STATE = {
  "task.ready": "ready", "task.claimed": "running", "task.retrying": "retrying",
  "task.completed": "completed", "task.failed": "failed", "task.cancelled": "cancelled",
  "task.awaiting_approval": "awaiting_approval", "task.upstream_failed": "upstream_failed",
  "task.skipped": "skipped",
};

function eventTasks(e) {
  if (e.task) return [String(e.task)];
  if (Array.isArray(e.tasks)) return e.tasks.map(String);
  return e.tasks ? String(e.tasks).split(/[\s,]+/).filter(Boolean) : [];
}

function applyEvent(e) {
  // True when the event was taken in whole: every task it names is known and drawn.
  const state = EVENT_STATE[e.type];
  const ids = eventTasks(e);
  if (!state || !graph || !graph.tasks || countsOnly || !ids.length) return false;
  const found = ids.map((id) => graph.tasks.find((t) => t.id === id));
  if (found.some((t) => !t)) return false;
  for (const t of found) {
    if (t.state === state) continue;
    graph.counts[t.state] = (graph.counts[t.state] || 1) - 1;
    if (!graph.counts[t.state]) delete graph.counts[t.state];
    graph.counts[state] = (graph.counts[state] || 0) + 1;
    t.state = state;
    const node = document.querySelector(`#dag g.node[data-id="${CSS.escape(t.id)}"]`);
    if (!node) continue;
    node.setAttribute("data-state", state);
    node.querySelector("rect").setAttribute("fill", `var(--${state}, #fff)`);
    text(node.querySelector("text.sub"), state + (t.agent ? " · " + t.agent : "") +
      (t.kind !== "work" ? " · " + t.kind : ""));
    text(node.querySelector("title"), `${t.id}: ${state}${t.description ? "\n" + t.description : ""}`);
  }
  drawSummary();
  return true;
}

// -- agents ---------------------------------------------------------------------------------

async function loadAgents() {
  const rows = await api("agents");
  const body = $("agents").tBodies[0];
  body.replaceChildren();
  for (const a of rows) {
    const tr = make("tr", { "data-agent": a.name });
    const beat = a.heartbeat_age == null ? "-" : a.heartbeat_age + "s";
    for (const v of [a.name, a.model, a.state + (a.reason ? ` (${a.reason})` : ""), a.task || "-",
      beat, a.restarts]) tr.appendChild(make("td", {}, v));
    body.appendChild(tr);
  }
  if (!rows.length) body.appendChild(make("tr", {}, "No agents."));
}

// -- events ---------------------------------------------------------------------------------

let lastId = null;

function describe(e) {
  const skip = new Set(["id", "type", "ts"]);
  return Object.entries(e).filter(([k]) => !skip.has(k))
    .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`).join(" ");
}

function addEvent(e) {
  const list = $("events");
  const li = make("li", { "data-type": e.type });
  li.append(make("time", {}, clock(e.ts)), document.createTextNode(`${e.type} ${describe(e)}`));
  list.prepend(li);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

// What events cannot say in place is read again, the graph at most every GRAPH_EVERY ms.
const GRAPH_EVERY = 3000;
let refreshTimer = null;
function refreshSoon(what) {
  const pending = refreshSoon.pending = refreshSoon.pending || {};
  for (const [k, v] of Object.entries(what)) pending[k] = pending[k] || v; // asked once: kept
  if (refreshTimer) return;
  const wait = refreshSoon.pending.graph
    ? Math.max(150, GRAPH_EVERY - (Date.now() - graphLoadedAt)) : 150;
  refreshTimer = setTimeout(async () => {
    const pending = refreshSoon.pending; refreshSoon.pending = {}; refreshTimer = null;
    try {
      if (pending.graph) await loadGraph();
      else if (pending.task && selected) await loadTask(selected);
      if (pending.agents) await loadAgents();
    } catch (err) { console.warn(err); }
  }, wait);
}

function onEvent(e) {
  lastId = e.id || lastId;
  addEvent(e);
  const kind = String(e.type || "");
  const shaping = kind.startsWith("task") || kind.startsWith("apply") ||
    kind.startsWith("git") || kind.startsWith("tasks");
  const inPlace = shaping && applyEvent(e);
  refreshSoon({ graph: shaping && !inPlace, agents: true,
    task: selected != null && eventTasks(e).includes(selected) });
}

function onGap(gap) {
  // Events after the one this page saw last were trimmed from the capped stream: what they
  // changed is read anew, and the feed says so.
  addEvent({ type: "gap", ts: Date.now() / 1000, from: gap.from, oldest: gap.oldest });
  refreshSoon({ graph: true, agents: true });
}

async function follow() {
  // SSE over fetch: `id:`/`event:`/`data:` lines; reconnects with Last-Event-ID, so nothing is
  // lost or shown twice across a dropped connection.
  for (;;) {
    try {
      const h = headers({ Accept: "text/event-stream" });
      if (lastId) h["Last-Event-ID"] = lastId;
      const res = await fetch("v1/events/stream", { headers: h });
      if (!res.ok || !res.body) throw new Error("stream " + res.status);
      $("link").className = "link live"; text($("link"), "live");
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const lines = buffer.slice(0, cut).split("\n"); buffer = buffer.slice(cut + 2);
          const data = lines.filter((l) => l.startsWith("data:"))
            .map((l) => l.slice(5).trimStart()).join("\n");
          const id = lines.find((l) => l.startsWith("id:"));
          const kind = (lines.find((l) => l.startsWith("event:")) || "event:").slice(6).trim();
          if (!data) continue;
          const event = JSON.parse(data);
          if (kind === "gap") { onGap(event); continue; }
          if (kind === "error") throw new Error("stream: " + event.error);
          if (id && !event.id) event.id = id.slice(3).trim();
          onEvent(event);
        }
      }
    } catch (err) { console.warn(err); }
    $("link").className = "link down"; text($("link"), "reconnecting…");
    await new Promise((r) => setTimeout(r, 1000));
  }
}

async function loadEvents() {
  const events = await api("events?last=50");
  for (const e of events) addEvent(e);
  if (events.length) lastId = events[events.length - 1].id;
}

// -- one task -------------------------------------------------------------------------------

async function openTask(id) {
  selected = id;
  $("task-panel").hidden = false;
  drawGraph();
  await loadTask(id);
  $("task-panel").scrollIntoView({ behavior: "smooth", block: "nearest" });
}

async function loadTask(id) {
  let t;
  try { t = await api("tasks/" + encodeURIComponent(id)); } catch (err) {
    text($("task-said"), err.message); return;
  }
  text($("task-title"), t.id);
  const facts = $("task-facts");
  facts.replaceChildren();
  const rows = [["state", t.state], ["agent", t.agent || t.target || "-"],
    ["description", t.description], ["result", t.result], ["error", t.error],
    ["upstream", t.upstream]];
  if (t.git) rows.push(["branch", t.git.branch], ["stage", t.git.stage]);
  for (const [k, v] of rows) if (v) facts.append(make("dt", {}, k), make("dd", {}, v));
  const body = $("attempts").tBodies[0];
  body.replaceChildren();
  for (const a of t.attempts || []) {
    const tr = make("tr");
    const cost = a.cost_usd == null ? "-" : "$" + Number(a.cost_usd).toFixed(4);
    for (const v of [a.attempt, a.agent, a.exit_class, a.exit_code ?? "-", took(a.duration_s),
      cost]) tr.appendChild(make("td", {}, v));
    tr.appendChild(make("td", { class: "wrap" }, a.error || ""));
    body.appendChild(tr);
  }
  const tail = t.log_tail;
  text($("log-tail"), Array.isArray(tail) ? tail.join("\n") : tail || "(no log yet)");
  // As `tt retry` takes it: a finished or retrying task (upstream_failed: retry the upstream).
  $("task-retry").disabled = !["failed", "completed", "cancelled", "retrying"].includes(t.state);
  $("task-cancel").disabled = ["completed", "cancelled", "failed"].includes(t.state);
}

async function act(verb) {
  if (!selected) return;
  text($("task-said"), verb + "…");
  try {
    await api(`tasks/${encodeURIComponent(selected)}/${verb}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: "{}" });
    text($("task-said"), verb === "retry" ? "retried" : "cancelled");
    refreshSoon({ graph: true });
  } catch (err) {
    text($("task-said"), err.message);
  }
}

$("task-retry").addEventListener("click", () => act("retry"));
$("task-cancel").addEventListener("click", () => act("cancel"));
$("task-close").addEventListener("click", () => {
  selected = null; $("task-panel").hidden = true; drawGraph();
});

async function start() {
  drawLegend();
  try {
    await Promise.all([loadGraph(), loadAgents(), loadEvents()]);
  } catch (err) {
    text($("summary"), err.message); $("summary").className = "error";
  }
  setInterval(() => refreshSoon({ agents: true }), 5000); // heartbeat ages move on their own
  follow();
}

start();

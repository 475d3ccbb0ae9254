// The page of `capfleet ui`. Every request carries the user's bearer token; the server answers only what
// the API server says that user may see. The token stays in this tab (sessionStorage), never in a URL.
import cytoscape from "cytoscape";

const $ = (sel) => document.querySelector(sel);
const status = (msg, ok) => { const s = $("#status"); s.textContent = msg || ""; s.className = ok ? "ok" : ""; };

let token = sessionStorage.getItem("capfleet-token") || "";
let fleet = { sensors: [], pipelines: [], replays: [] };

function headers() { return token ? { Authorization: "Bearer " + token } : {}; }

// api GETs path with params and returns the parsed JSON, or throws the server's reason.
async function api(path, params) {
  const res = await fetch(path + "?" + new URLSearchParams(params), { headers: headers() });
  if (!res.ok) throw new Error(await reason(res));
  return res.json();
}

async function reason(res) {
  try { return res.status + ": " + (await res.json()).error; } catch { return res.status + " " + res.statusText; }
}

const fmt = (n) => (n || 0).toLocaleString("en-US");
const el = (tag, attrs, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(k ?? ""));
  return e;
};
const row = (attrs, ...cells) => el("tr", attrs, ...cells.map((c) => el("td", {}, c)));

// ---- The fleet: a server-sent event stream read with fetch (EventSource cannot send a header). ----

let streamAbort = null;

async function watchFleet() {
  if (streamAbort) streamAbort.abort();
  const ctl = new AbortController();
  streamAbort = ctl;
  while (!ctl.signal.aborted) {
    try {
      const res = await fetch("/api/events", { headers: headers(), signal: ctl.signal });
      if (!res.ok) { status(await reason(res)); return; }
      status("watching the fleet", true);
      const rd = res.body.getReader();
      const dec = new TextDecoder();
      let buf = "";
      for (;;) {
        const { value, done } = await rd.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          onEvent(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch (e) {
      if (ctl.signal.aborted) return;
      status("fleet stream: " + e.message + "; reconnecting");
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
}

function onEvent(block) {
  let type = "message", data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event: ")) type = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (type === "fleet") { fleet = JSON.parse(data); renderFleet(); }
  else if (type === "problem") status(JSON.parse(data));
}

// Each sensor's packets/s as the fleet stream reports it, kept in this tab (the last 120 reports); the
// Traffic page draws the stored per-step counters of a pipeline's sensor (query traffic).
const history = new Map();

function sparkline(key, value) {
  const h = history.get(key) || [];
  if (h.length === 0 || h[h.length - 1].t !== value.t) h.push(value);
  if (h.length > 120) h.shift();
  history.set(key, h);
  const w = 120, ht = 24, max = Math.max(1, ...h.map((p) => p.v));
  const y = (v) => 3 + (ht - 6) * (1 - v / max);
  const pts = h.map((p, i) => `${(i / Math.max(1, h.length - 1)) * (w - 3)},${y(p.v)}`).join(" ");
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", w);
  svg.setAttribute("height", ht);
  const pl = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  pl.setAttribute("points", pts);
  pl.setAttribute("fill", "none");
  pl.setAttribute("stroke", "#4fa3ff");
  svg.append(pl);
  const last = h[h.length - 1], dot = document.createElementNS("http://www.w3.org/2000/svg", "circle");
  dot.setAttribute("cx", h.length > 1 ? w - 3 : 3);
  dot.setAttribute("cy", y(last.v));
  dot.setAttribute("r", 2.5);
  dot.setAttribute("fill", "#4fa3ff");
  svg.append(dot);
  return svg;
}

function renderFleet() {
  const now = Date.now();
  const sb = $("#sensors tbody");
  sb.replaceChildren();
  for (const s of fleet.sensors) {
    const st = s.status || {};
    const d = st.drops || {};
    sb.append(row({ "data-name": s.name }, s.namespace, s.name, st.nodes || `${st.nodesReady || 0}/${st.nodesDesired || 0}`,
      fmt(st.packetsPerSecond), fmt(st.bytesPerSecond), fmt(d.total), st.dropPercent || "",
      sparkline(s.namespace + "/" + s.name, { t: now, v: st.packetsPerSecond || 0 })));
    for (const n of st.perNode || []) {
      sb.append(row({ class: "node", "data-node": n.node }, "", "↳ " + n.node, "",
        fmt(n.packetsPerSecond), fmt(n.bytesPerSecond), fmt((n.drops || {}).total), "", ""));
    }
  }
  const pb = $("#pipelines tbody");
  pb.replaceChildren();
  for (const p of fleet.pipelines) {
    const st = p.status || {};
    pb.append(row({ "data-name": p.name }, p.namespace, p.name, `${st.readyReplicas || 0}/${st.replicas || 0}`,
      fmt(st.recordsInPerSecond), fmt(st.recordsOutPerSecond), fmt(st.consumerLag), fmt(st.errors), fmt(st.activeFlows)));
  }
  const rb = $("#replays tbody");
  rb.replaceChildren();
  for (const r of fleet.replays) {
    const st = r.status || {};
    const pct = parseInt(st.progress || "0", 10) || 0;
    const bar = el("div", { class: "bar", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100",
      "aria-valuenow": String(pct), "data-phase": st.phase || "", title: st.progress || "0%" }, el("div", { style: `width:${pct}%` }));
    rb.append(row({ "data-name": r.name }, r.namespace, r.name, st.phase || "", el("span", {}, bar, " " + (st.progress || "0%")),
      `${fmt(st.packetsSent)} / ${fmt(st.packetsTotal)}`, fmt(st.packetsPerSecond)));
  }
  // The data pages read one pipeline's stored data at a time.
  const sel = $("#pipeline");
  const cur = sel.value;
  sel.replaceChildren(...fleet.pipelines.map((p) => el("option", { value: p.namespace + "/" + p.name }, p.namespace + "/" + p.name)));
  if (cur) sel.value = cur;
}

// ---- The data pages: one pipeline, a time range. ----

function range(extra) {
  const [ns, pipeline] = ($("#pipeline").value || "/").split("/");
  const p = { ns, pipeline, from: $("#from").value.trim(), ...extra };
  if ($("#to").value.trim()) p.to = $("#to").value.trim();
  return p;
}

// drawTraffic charts the stored counters of the pipeline's sensor, one bar per step with packets, from
// /api/traffic (what `capfleet query traffic` prints). Steps without packets are gaps.
async function drawTraffic() {
  status("");
  let points;
  const step = $("#step").value.trim() || "1s";
  try { points = await api("/api/traffic", range({ step })); } catch (e) { status(e.message); return; }
  const svg = $("#traffic"), W = 900, H = 240, pad = 30, measure = $("#measure").value;
  svg.replaceChildren();
  const ns = "http://www.w3.org/2000/svg";
  const t0 = points.length ? Date.parse(points[0].start) : 0, t1 = points.length ? Date.parse(points[points.length - 1].start) : 1;
  const max = Math.max(1, ...points.map((p) => p[measure]));
  const span = Math.max(1, t1 - t0), bw = Math.max(2, (W - 2 * pad) / Math.max(1, points.length) - 1);
  for (const p of points) {
    const x = pad + ((Date.parse(p.start) - t0) / span) * (W - 2 * pad - bw), h = ((H - 2 * pad) * p[measure]) / max;
    const r = document.createElementNS(ns, "rect");
    Object.entries({ x, y: H - pad - h, width: bw, height: h, fill: "#4fa3ff", class: "step" }).forEach(([k, v]) => r.setAttribute(k, v));
    r.dataset.start = p.start;
    r.dataset.value = p[measure];
    const tip = document.createElementNS(ns, "title");
    tip.textContent = `${p.start}: ${fmt(p.packets)} packets, ${fmt(p.bytes)} bytes`;
    r.append(tip);
    svg.append(r);
  }
  const axis = document.createElementNS(ns, "text");
  axis.setAttribute("x", pad);
  axis.setAttribute("y", 16);
  axis.textContent = `max ${fmt(max)} ${measure} per ${step}`;
  svg.append(axis);
  const total = points.reduce((a, p) => ({ packets: a.packets + p.packets, bytes: a.bytes + p.bytes }), { packets: 0, bytes: 0 });
  $("#traffic-info").textContent = `${points.length} steps with packets, ${fmt(total.packets)} packets, ${fmt(total.bytes)} bytes`;
}

let cy = null;
let graphData = null;

async function drawGraph() {
  status("");
  try {
    graphData = await api("/api/graph", range({ window: $("#window").value.trim(), minBytes: $("#minbytes").value.trim() || "0" }));
  } catch (e) { status(e.message); return; }
  const maxBytes = Math.max(1, ...graphData.links.map((l) => l.ip_bytes));
  const elements = [
    ...graphData.nodes.map((n) => ({ data: { id: n.id } })),
    ...graphData.links.map((l, i) => ({ data: { id: "e" + i, source: l.source, target: l.target, bytes: l.ip_bytes,
      w: 1 + 7 * Math.sqrt(l.ip_bytes / maxBytes), windows: (l.windows || []).map((w) => w.Start) } })),
  ];
  if (cy) cy.destroy();
  cy = cytoscape({
    container: $("#graph"), elements,
    style: [
      { selector: "node", style: { label: "data(id)", "font-size": 10, "background-color": "#4fa3ff", width: 14, height: 14 } },
      { selector: "edge", style: { width: "data(w)", "line-color": "#9fb3c8", "curve-style": "bezier" } },
      { selector: ".off", style: { display: "none" } },
    ],
    layout: { name: "cose", animate: false, randomize: false, padding: 40 },
    // A handful of hosts would otherwise be blown up to fill the box.
    maxZoom: 1.5,
  });
  window.capfleetGraph = cy; // for the browser test and the curious
  // The slider walks the windows the graph was built in: edges active in that window, and their hosts.
  const starts = [...new Set(graphData.links.flatMap((l) => (l.windows || []).map((w) => w.Start)))].sort();
  const sl = $("#slider");
  sl.max = String(starts.length);
  sl.value = "0";
  sl.disabled = starts.length === 0;
  sl.oninput = () => {
    const i = Number(sl.value);
    cy.batch(() => {
      if (i === 0) { cy.elements().removeClass("off"); return; }
      const w = starts[i - 1];
      cy.edges().forEach((e) => e.toggleClass("off", !e.data("windows").includes(w)));
      cy.nodes().forEach((n) => n.toggleClass("off", n.connectedEdges().filter((e) => !e.hasClass("off")).length === 0));
    });
    $("#slider-label").textContent = i === 0 ? "all" : starts[i - 1];
  };
  $("#slider-label").textContent = "all";
  $("#graph-info").textContent = `${graphData.nodes.length} hosts, ${graphData.links.length} pairs`;
}

async function searchFlows() {
  status("");
  const p = range({});
  for (const k of ["ip", "port", "proto"]) if ($("#" + k).value.trim()) p[k] = $("#" + k).value.trim();
  let flows, truncated = false;
  try {
    const res = await fetch("/api/flows?" + new URLSearchParams(p), { headers: headers() });
    if (!res.ok) throw new Error(await reason(res));
    truncated = res.headers.get("X-Capfleet-Truncated") === "true";
    flows = await res.json();
  } catch (e) { status(e.message); return; }
  const tb = $("#flows tbody");
  tb.replaceChildren();
  for (const f of flows) {
    const link = el("a", { href: "#", class: "pcap", "data-uid": f.uid }, "pcap");
    link.onclick = (ev) => { ev.preventDefault(); downloadPcap(f.uid); };
    const orig = `${f["id.orig_h"]}:${f["id.orig_p"]}`, resp = `${f["id.resp_h"]}:${f["id.resp_p"]}`;
    tb.append(row({ "data-uid": f.uid }, new Date(f.ts * 1000).toISOString(), (f.duration || 0).toFixed(6), f.proto, orig, resp,
      `${fmt(f.orig_ip_bytes)}/${fmt(f.resp_ip_bytes)}`, f.conn_state, f.uid, link));
  }
  status(truncated ? `the ${flows.length} largest flows; narrow the search for the rest` : `${flows.length} flows`, true);
}

// downloadPcap fetches the flow's packets with the token and saves them; a plain link could not carry it.
async function downloadPcap(uid) {
  const res = await fetch("/api/pcap?" + new URLSearchParams(range({ flow: uid })), { headers: headers() });
  if (!res.ok) { status(await reason(res)); return; }
  const name = (/filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "") || [])[1] || `flow-${uid}.pcap`;
  const url = URL.createObjectURL(await res.blob());
  const a = el("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

async function showTop() {
  status("");
  let top;
  try { top = await api("/api/top", range({ group: $("#group").value, by: $("#by").value, n: $("#n").value.trim() || "20" })); } catch (e) { status(e.message); return; }
  const max = Math.max(1, ...top.map((t) => t[$("#by").value === "bytes" ? "ip_bytes" : $("#by").value]));
  const tb = $("#top tbody");
  tb.replaceChildren();
  for (const t of top) {
    const v = t[$("#by").value === "bytes" ? "ip_bytes" : $("#by").value];
    tb.append(row({ "data-a": t.a }, t.a, t.b || "", fmt(t.flows), fmt(t.packets), fmt(t.ip_bytes), fmt(t.ip_bytes_out), fmt(t.ip_bytes_in),
      el("span", { class: "bar" }, el("div", { style: `width:${(100 * v) / max}%` }))));
  }
}

// ---- Pages and the token. ----

function show() {
  const page = (location.hash || "#fleet").slice(1);
  document.querySelectorAll(".page").forEach((p) => p.classList.toggle("shown", p.id === "page-" + page));
  document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === page));
  $("#range").style.display = page === "fleet" ? "none" : "block";
}

$("#login").onsubmit = (ev) => {
  ev.preventDefault();
  token = $("#token").value.trim();
  sessionStorage.setItem("capfleet-token", token);
  $("#token").value = "";
  watchFleet();
};
$("#graph-form").onsubmit = (ev) => { ev.preventDefault(); drawGraph(); };
$("#traffic-form").onsubmit = (ev) => { ev.preventDefault(); drawTraffic(); };
$("#flows-form").onsubmit = (ev) => { ev.preventDefault(); searchFlows(); };
$("#top-form").onsubmit = (ev) => { ev.preventDefault(); showTop(); };
window.addEventListener("hashchange", show);
show();
if (token) watchFleet(); else status("Paste a bearer token to start: kubectl create token NAME -n NAMESPACE");

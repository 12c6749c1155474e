// The ferrosim activation dashboard. Every number comes from the JSON API
// (/api/v1/telemetry/...); the server-sent event stream says when to refresh.
// Elements showing a number carry the API's raw value in data-value.
"use strict";

const API = "/api/v1/telemetry";
const state = { window: 3600, charts: {}, refreshing: false, again: false };

function $(id) { return document.getElementById(id); }

async function getJSON(path) {
  const r = await fetch(API + path, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) { throw new Error(body.error || ("HTTP " + r.status)); }
  return body;
}

function fmtRatio(r) { return r == null ? "—" : (r * 100).toFixed(2) + " %"; }
function fmtMs(ms) {
  if (ms == null) { return "—"; }
  if (ms < 1000) { return ms.toFixed(0) + " ms"; }
  if (ms < 120000) { return (ms / 1000).toFixed(1) + " s"; }
  return (ms / 60000).toFixed(1) + " min";
}
function fmtBytes(b) {
  if (b == null) { return "—"; }
  if (b < 10000) { return b.toFixed(0) + " B"; }
  if (b < 10000000) { return (b / 1000).toFixed(1) + " kB"; }
  return (b / 1000000).toFixed(1) + " MB";
}
function fmtCount(n) { return n == null ? "—" : String(n); }
function fmtTime(ms) { return new Date(ms).toISOString().replace("T", " ").replace("Z", ""); }

function setValue(id, raw, text) {
  const el = $(id);
  el.textContent = text;
  el.dataset.value = raw == null ? "" : String(raw);
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  if (text instanceof Node) { td.appendChild(text); } else { td.textContent = text; }
  if (cls) { td.className = cls; }
  row.appendChild(td);
  return td;
}

// Fills a table body with one row per item, or says "no data yet".
function fill(tableId, items, columns) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren();
  if (!items || items.length === 0) {
    const tr = document.createElement("tr");
    const td = cell(tr, "no data yet", "empty");
    td.colSpan = $(tableId).querySelectorAll("thead th").length;
    body.appendChild(tr);
    return;
  }
  for (const item of items) {
    const tr = document.createElement("tr");
    for (const col of columns) { col(tr, item); }
    body.appendChild(tr);
  }
}

function renderOverview(o) {
  const h = o.headline;
  setValue("success-ratio", h.success_ratio, fmtRatio(h.success_ratio));
  setValue("within-target", h.within_target, fmtCount(h.within_target));
  setValue("decided", h.decided, fmtCount(h.decided));
  setValue("pending", h.pending, fmtCount(h.pending));
  setValue("started", h.started, fmtCount(h.started));
  setValue("mttr", h.mttr_ms, fmtMs(h.mttr_ms));
  setValue("recovered", h.recovered, fmtCount(h.recovered));
  setValue("failed", h.failed, fmtCount(h.failed));
  setValue("unrecovered", h.unrecovered, fmtCount(h.unrecovered));
  setValue("bytes-per-profile", h.bytes_per_active_profile, fmtBytes(h.bytes_per_active_profile));
  setValue("bytes", h.bytes, fmtCount(h.bytes));
  setValue("active-profiles", h.active_profiles, fmtCount(h.active_profiles));
  setValue("never-enabled", h.downloaded_never_enabled, fmtCount(h.downloaded_never_enabled));
  const f = o.fleet;
  setValue("fleet-devices", f.devices, fmtCount(f.devices));
  setValue("fleet-healthy", f.healthy, fmtCount(f.healthy));
  setValue("fleet-failing", f.failing, fmtCount(f.failing));
  setValue("fleet-in-progress", f.in_progress, fmtCount(f.in_progress));
  const p = o.pipeline;
  setValue("pipe-written", p.events_written, fmtCount(p.events_written));
  setValue("pipe-dropped", p.dropped, fmtCount(p.dropped));
  setValue("pipe-unattributed", p.unattributed, fmtCount(p.unattributed));
  setValue("pipe-backlog", p.outbox_backlog, fmtCount(p.outbox_backlog));
  $("as-of").textContent = "as of " + fmtTime(o.as_of) + " UTC" + (o.truncated ? " (events cut)" : "");
}

// The y range of a chart from zero: a percentage stays within 0-100;
// other values get 10 % head room (uPlot's own range pads a flat line to
// twice its value, so a steady 100 % success would reach 200).
function percentRange() { return [0, 100]; }
function fromZero(u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; }

function chart(id, label, color, data, yRange) {
  const el = $(id);
  if (state.charts[id]) { state.charts[id].setData(data); return; }
  const opts = {
    width: Math.max(260, el.clientWidth || 300), height: 160,
    scales: { x: { time: true }, y: { range: yRange || fromZero } },
    series: [{}, { label: label, stroke: color, width: 2, spanGaps: false, points: { show: true } }],
    axes: [{}, { size: 60 }],
    legend: { show: false },
  };
  state.charts[id] = new uPlot(opts, data, el);
}

function renderSeries(s) {
  const xs = s.buckets.map(b => b.to / 1000);
  chart("chart-success", "success within 60 s", "#1a7f37",
    [xs, s.buckets.map(b => b.success_ratio == null ? null : b.success_ratio * 100)], percentRange);
  chart("chart-mttr", "MTTR", "#cf222e",
    [xs, s.buckets.map(b => b.mttr_ms == null ? null : b.mttr_ms / 1000)]);
  chart("chart-bytes", "bytes per active profile", "#0b5cad",
    [xs, s.buckets.map(b => b.bytes_per_active_profile)]);
}

function renderCarriers(c) {
  fill("carriers", c.carriers, [
    (tr, x) => { tr.dataset.carrier = x.carrier; cell(tr, x.carrier); },
    (tr, x) => cell(tr, x.health, x.health.replace(" ", "-")),
    (tr, x) => cell(tr, String(x.started)),
    (tr, x) => { const td = cell(tr, fmtRatio(x.success_ratio)); td.dataset.value = x.success_ratio == null ? "" : String(x.success_ratio); },
    (tr, x) => cell(tr, fmtMs(x.mttr_ms)),
    (tr, x) => cell(tr, String(x.unrecovered)),
    (tr, x) => cell(tr, fmtBytes(x.bytes_per_active_profile)),
  ]);
}

function deviceLink(eid) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "link";
  b.textContent = eid;
  b.addEventListener("click", () => { $("device-eid").value = eid; showDevice(eid); });
  return b;
}

function renderFailures(f) {
  fill("failures", f.failures, [
    (tr, x) => { tr.dataset.activation = String(x.activation); cell(tr, fmtTime(x.failed_at)); },
    (tr, x) => cell(tr, deviceLink(x.device)),
    (tr, x) => cell(tr, x.cause),
    (tr, x) => cell(tr, x.recovery_ms == null ? "not recovered" : fmtMs(x.recovery_ms), x.recovery_ms == null ? "failing" : "ok"),
  ]);
}

function renderAlerts(a) {
  $("alerts-slo").textContent = a.slo + ", objective " + (a.objective * 100).toFixed(1) + " %";
  const burn = b => b == null ? "—" : b.toFixed(2) + "×";
  fill("alerts", a.alerts, [
    (tr, x) => cell(tr, x.severity),
    (tr, x) => cell(tr, x.long_window + " / " + x.short_window),
    (tr, x) => cell(tr, burn(x.long_burn)),
    (tr, x) => cell(tr, burn(x.short_burn)),
    (tr, x) => cell(tr, x.factor + "×"),
    (tr, x) => cell(tr, x.firing ? "FIRING" : "ok", x.firing ? "firing" : "ok"),
  ]);
}

function renderFailovers(f) {
  fill("failovers", f.failovers, [
    (tr, x) => cell(tr, fmtTime(x.started_at)),
    (tr, x) => cell(tr, deviceLink(x.device)),
    (tr, x) => cell(tr, x.carrier || "(none)"),
    (tr, x) => cell(tr, x.succeeded ? "yes" : "no"),
  ]);
}

function renderRollouts(r) {
  fill("rollouts", r.rollouts, [
    (tr, x) => cell(tr, x.wave),
    (tr, x) => cell(tr, String(x.started)),
    (tr, x) => cell(tr, fmtRatio(x.success_ratio)),
    (tr, x) => cell(tr, x.gates.length ? x.gates.join(", ") : "none reported"),
  ]);
}

function renderEim(e) {
  fill("eim", e.queues, [
    (tr, x) => cell(tr, x.eim),
    (tr, x) => cell(tr, String(x.queued)),
  ]);
}

function describe(ev) {
  const e = ev.event;
  switch (e.type) {
    case "step": return e.function + " " + e.status + " (" + e.duration_ms + " ms, " +
      (e.signalling_bytes + e.bpp_bytes) + " B)";
    case "euicc": return "eUICC " + e.outcome + (e.stage ? " at " + e.stage + " reason " + e.reason : "") +
      (e.profile ? " " + e.profile : "");
    case "profile": return "profile " + e.profile + " " + e.change;
    case "registration": return "registration " + e.outcome + (e.cause != null ? " cause " + e.cause : "");
    case "data_path": return "data path " + e.latency_ms + " ms";
    case "handover_failure": return "handover failure cause " + e.cause;
    case "activation_started": return "activation started (" + e.kind + ")";
    default: return e.type;
  }
}

async function showDevice(eid) {
  $("device-error").textContent = "";
  try {
    const t = await getJSON("/devices/" + encodeURIComponent(eid.trim()) + "/timeline");
    fill("timeline", t.events, [
      (tr, x) => cell(tr, fmtTime(x.at)),
      (tr, x) => cell(tr, x.activation == null ? "" : String(x.activation)),
      (tr, x) => cell(tr, x.source),
      (tr, x) => cell(tr, x.carrier || ""),
      (tr, x) => cell(tr, describe(x)),
    ]);
    $("timeline").dataset.device = t.device;
  } catch (err) {
    $("device-error").textContent = err.message;
  }
}

async function refresh() {
  if (state.refreshing) { state.again = true; return; }
  state.refreshing = true;
  const w = "?window=" + state.window;
  try {
    const [o, s, c, f, a, fo, r, e] = await Promise.all([
      getJSON("/overview" + w), getJSON("/series" + w), getJSON("/carriers" + w),
      getJSON("/failures" + w), getJSON("/alerts"), getJSON("/failovers" + w),
      getJSON("/rollouts" + w), getJSON("/eim"),
    ]);
    renderOverview(o); renderSeries(s); renderCarriers(c); renderFailures(f);
    renderAlerts(a); renderFailovers(fo); renderRollouts(r); renderEim(e);
    document.body.dataset.loaded = String(o.as_of);
  } catch (err) {
    $("live").textContent = "error: " + err.message;
  } finally {
    state.refreshing = false;
    if (state.again) { state.again = false; refresh(); }
  }
}

function connect() {
  const es = new EventSource(API + "/stream");
  es.addEventListener("open", () => { $("live").textContent = "live"; $("live").className = "badge live"; });
  es.addEventListener("overview", () => { refresh(); });
  es.addEventListener("error", () => { $("live").textContent = "reconnecting"; $("live").className = "badge"; });
}

$("window").addEventListener("change", ev => { state.window = Number(ev.target.value); refresh(); });
$("device-form").addEventListener("submit", ev => { ev.preventDefault(); showDevice($("device-eid").value); });
refresh();
connect();

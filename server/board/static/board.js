// B40 operations board: REST for the reference data and actions, /ws/board for the live picture.
"use strict";

const API = "/api/v1";
const PRIORITY = { critical: 0, high: 1, normal: 2 };
const NEXT_DEPLOYMENT = { mobilising: ["en_route", "released"], en_route: ["on_scene", "released"], on_scene: ["released"], released: ["returned"] };
const WRITERS = ["admin", "coordinator", "city_operator"];
const STALE_MS = 45000; // two missed heartbeats (sent every 20 s)
const TIMELINE_MAX = 300;

const state = {
  token: localStorage.getItem("b40.token") || "",
  me: null, cities: new Map(), capabilities: [], units: new Map(), incidents: new Map(),
  requests: new Map(), offers: new Map(), deployments: new Map(), timeline: [], flags: [],
  lastSeq: null, ws: null, backoff: 500, lastMessageAt: 0, renderQueued: false, openPicker: null,
};
window.b40 = state; // for tests and the curious

const $ = (id) => document.getElementById(id);
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== false && v != null) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c != null) node.append(c.nodeType ? c : String(c));
  return node;
}
function svg(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}
function ago(iso) {
  if (!iso) return "";
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 60) return `${Math.floor(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d`;
}

// ---- HTTP --------------------------------------------------------------------------------------
async function api(method, path, body) {
  const response = await fetch(API + path, {
    method, headers: { Authorization: `Bearer ${state.token}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = data.detail || data.error || data;
    throw new Error(typeof detail === "string" ? detail : (detail.message || JSON.stringify(detail)));
  }
  return data;
}
async function act(promise) {
  $("action-error").textContent = "";
  try { return await promise; } catch (error) { $("action-error").textContent = error.message; return null; }
}

// ---- login -------------------------------------------------------------------------------------
async function login(token) {
  state.token = token;
  try { state.me = await api("GET", "/users/me"); }
  catch (error) { state.me = null; return error.message; }
  localStorage.setItem("b40.token", token);
  return null;
}
async function start() {
  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const problem = await login($("token").value.trim());
    if (problem) { $("login-error").textContent = problem; return; }
    $("login").close();
    await open();
  });
  $("logout").addEventListener("click", () => {
    localStorage.removeItem("b40.token"); if (state.ws) state.ws.close(); location.reload();
  });
  if (state.token && !(await login(state.token))) { await open(); return; }
  $("login").showModal();
}

async function open() {
  const me = state.me;
  $("who").textContent = `${me.name} · ${me.role}${me.city ? " · " + me.city : ""}`;
  $("logout").hidden = false;
  const [cities, capabilities] = await Promise.all([api("GET", "/cities"), api("GET", "/capabilities")]);
  for (const c of cities.items) state.cities.set(c.slug, c);
  state.capabilities = capabilities.items;
  for (let offset = 0; ; offset += 1000) {
    const page = await api("GET", `/resources?limit=1000&offset=${offset}`);
    for (const u of page.items) state.units.set(u.id, u);
    if (offset + page.items.length >= page.total || !page.items.length) break;
  }
  await drawMap();
  fillFilters();
  setupActions();
  connect();
  setInterval(checkStale, 5000);
  setInterval(queueRender, 10000); // "time since posted" moves on
  queueRender();
}

// ---- the stream --------------------------------------------------------------------------------
function setConn(s) { const c = $("conn"); c.dataset.state = s; c.textContent = s; }
function connect() {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const after = state.lastSeq === null ? "" : `&after=${state.lastSeq}`;
  const ws = new WebSocket(`${proto}://${location.host}/ws/board?token=${encodeURIComponent(state.token)}${after}`);
  state.ws = ws;
  ws.onopen = () => { state.backoff = 500; state.lastMessageAt = Date.now(); setConn("live"); };
  ws.onmessage = (message) => { state.lastMessageAt = Date.now(); if (state.ws === ws) receive(JSON.parse(message.data)); };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    setConn("reconnecting");
    setTimeout(connect, state.backoff);
    state.backoff = Math.min(state.backoff * 2, 8000);
  };
}
function checkStale() {
  const ws = state.ws;
  if (ws && ws.readyState === WebSocket.OPEN && Date.now() - state.lastMessageAt > STALE_MS) {
    setConn("stale");
    ws.close(); // onclose reconnects with after=<last seq>
  }
}
function receive(m) {
  if (m.type === "heartbeat") return;
  if (m.type === "snapshot") { applySnapshot(m); return; }
  if (m.type === "resync") { state.ws.close(); return; } // reconnect with after=<last seq>
  if (typeof m.seq !== "number") return;
  if (state.lastSeq !== null && m.seq <= state.lastSeq) return; // already applied
  if (state.lastSeq !== null && m.seq > state.lastSeq + 1) { state.ws.close(); return; } // gap: resume
  applyEvent(m);
  state.lastSeq = m.seq;
  $("seq").textContent = `seq ${m.seq}`;
  queueRender();
}
function applySnapshot(s) {
  const busy = new Set(s.units.map((u) => u.id));
  for (const u of state.units.values()) if (!busy.has(u.id) && u.status !== "available") u.status = "available";
  for (const u of s.units) state.units.set(u.id, u);
  state.incidents = new Map(s.incidents.map((i) => [i.id, i]));
  state.requests = new Map(s.requests.map((r) => [r.id, r]));
  state.offers = new Map(s.offers.map((o) => [o.id, o]));
  state.deployments = new Map(s.deployments.map((d) => [d.id, d]));
  for (const a of s.alerts.slice().reverse()) pushTimeline({ seq: null, type: "alert", alert: a, created_at: a.created_at });
  state.lastSeq = s.seq;
  $("seq").textContent = `seq ${s.seq}`;
  loadHistory(s.seq);
  queueRender();
}
async function loadHistory(seq) {
  // The timeline's past, for display only: the snapshot already holds the state it led to.
  const page = await api("GET", `/events?after=${Math.max(0, seq - 100)}&limit=100`).catch(() => ({ items: [] }));
  const past = page.items.filter((e) => e.seq <= seq).reverse();
  const known = new Set(state.timeline.map((e) => e.seq));
  state.timeline = state.timeline.concat(past.filter((e) => !known.has(e.seq))).slice(0, TIMELINE_MAX);
  queueRender();
}
function applyEvent(e) {
  const p = e.payload || {};
  const [entity] = e.type.split(".");
  if (entity === "resource") state.units.set(p.id, { ...state.units.get(p.id), ...p });
  else if (entity === "incident") state.incidents.set(p.id, p);
  else if (entity === "request") state.requests.set(p.id, p);
  else if (entity === "offer") {
    if (p.status === "pending") state.offers.set(p.id, p); else state.offers.delete(p.id);
    if (p.request) state.requests.set(p.request.id, p.request);
  } else if (entity === "deployment") {
    const { request, resource, previous_status, ...d } = p;
    if (d.status === "returned") state.deployments.delete(d.id); else state.deployments.set(d.id, d);
    if (request) state.requests.set(request.id, request);
    const unit = state.units.get(d.resource_id);
    if (unit && resource) Object.assign(unit, { lat: resource.lat, lon: resource.lon });
  } else if (e.type === "allocation.planned" && Array.isArray(p.flags) && p.flags.length) {
    state.flags = p.flags.map((f) => ({ ...f, seq: e.seq }));
  }
  pushTimeline(e);
}
function pushTimeline(e) {
  state.timeline.unshift(e);
  if (state.timeline.length > TIMELINE_MAX) state.timeline.length = TIMELINE_MAX;
}

// ---- rendering ---------------------------------------------------------------------------------
function queueRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => { state.renderQueued = false; render(); });
}
function render() {
  renderRequests(); renderDeployments(); renderUnits(); renderTimeline(); renderFlags(); renderMapLayers(); renderIncidentChoices();
}
const cityName = (slug) => (state.cities.get(slug) || { name: slug }).name;
const exerciseTag = (x) => (x ? el("span", { class: "exercise-tag", title: "exercise: not a real emergency" }, "EXERCISE") : null);
const canWrite = () => state.me && WRITERS.includes(state.me.role);
const forCity = (city) => state.me && (state.me.role === "admin" || state.me.role === "coordinator" || state.me.city === city);

function renderRequests() {
  const open = [...state.requests.values()].filter((r) => r.status === "open" || r.status === "partially_filled");
  open.sort((a, b) => (PRIORITY[a.priority] - PRIORITY[b.priority]) || (Date.parse(a.created_at) - Date.parse(b.created_at)));
  const list = $("requests");
  list.replaceChildren(...open.map(requestItem));
  if (!open.length) list.append(el("li", { class: "muted" }, "No open requests."));
}
function requestItem(r) {
  const incident = state.incidents.get(r.incident_id);
  return el("li", { class: `${r.priority}${r.exercise ? " exercise" : ""}`, "data-request": r.id },
    el("div", { class: "req-head" }, exerciseTag(r.exercise), el("strong", {}, `#${r.id} ${cityName(r.city)}`),
      el("span", { class: "status" }, r.priority), el("span", { class: "muted", title: r.created_at }, `posted ${ago(r.created_at)} ago`)),
    incident ? el("div", { class: "muted" }, incident.title) : null,
    r.items.map((line) => lineRow(r, line)));
}
function lineRow(r, line) {
  const pct = (n) => `${Math.min(100, (100 * n) / line.quantity)}%`;
  const offers = [...state.offers.values()].filter((o) => o.request_item_id === line.id);
  const lineOpen = line.status === "open" || line.status === "partially_filled";
  const offerButton = canWrite() && lineOpen
    ? el("button", { type: "button", "data-offer-line": line.id, onclick: () => pickCandidate(r, line) }, "Offer unit") : el("span");
  const wrap = el("div", { "data-line": line.id },
    el("div", { class: "line-row" },
      el("span", {}, `${line.capability} ${line.accepted}/${line.quantity}`, line.offered ? el("span", { class: "muted" }, ` (+${line.offered} offered)`) : null),
      el("div", { class: "bar", title: `${line.accepted} accepted, ${line.offered} offered of ${line.quantity}` },
        el("span", { class: "accepted", style: `width:${pct(line.accepted)}` }), el("span", { class: "offered", style: `width:${pct(line.offered)}` })),
      offerButton),
    offers.map((o) => offerRow(o)));
  if (state.openPicker && state.openPicker.line === line.id) wrap.append(state.openPicker.node);
  return wrap;
}
function offerRow(o) {
  const unit = state.units.get(o.resource_id);
  const mine = forCity(o.requesting_city) && canWrite();
  return el("div", { class: "offer", "data-offer": o.id },
    el("span", {}, `offer #${o.id}: ${unit ? unit.callsign : "unit " + o.resource_id} from ${cityName(o.donor_city)}, ETA ${o.eta_hours.toFixed(1)} h`),
    mine ? el("button", { type: "button", class: "primary", "data-accept": o.id, onclick: () => act(api("POST", `/offers/${o.id}/accept`)) }, "Accept") : null,
    mine ? el("button", { type: "button", onclick: () => act(api("POST", `/offers/${o.id}/decline`)) }, "Decline") : null);
}
async function pickCandidate(r, line) {
  const data = await act(api("GET", `/requests/${r.id}/candidates`));
  if (!data) return;
  const found = (data.items.find((i) => i.item_id === line.id) || { candidates: [] }).candidates
    .filter((c) => forCity(c.city));
  const select = el("select", { "aria-label": "unit to offer" },
    found.map((c) => el("option", { value: c.resource_id }, `${c.callsign} (${cityName(c.city)}, ${c.eta_hours.toFixed(1)} h)`)));
  const node = el("div", { class: "offer-pick" }, found.length ? select : el("span", { class: "muted" }, "no unit of yours can fill this line"),
    found.length ? el("button", { type: "button", class: "primary", onclick: async () => {
      const ok = await act(api("POST", "/offers", { request_item_id: line.id, resource_id: Number(select.value) }));
      if (ok) { state.openPicker = null; queueRender(); }
    } }, "Send offer") : null,
    el("button", { type: "button", onclick: () => { state.openPicker = null; queueRender(); } }, "Cancel"));
  state.openPicker = { line: line.id, node };
  queueRender();
}
function renderDeployments() {
  const rows = [...state.deployments.values()].sort((a, b) => a.id - b.id).map((d) => {
    const unit = state.units.get(d.resource_id);
    const buttons = canWrite() && (forCity(d.donor_city) || forCity(d.requesting_city))
      ? (NEXT_DEPLOYMENT[d.status] || []).map((s) => el("button", { type: "button", "data-deployment": d.id, "data-status": s,
        onclick: () => act(api("POST", `/deployments/${d.id}/status`, { status: s })) }, s.replace("_", " "))) : [];
    return el("tr", {}, el("td", {}, exerciseTag(unit && unit.exercise), " ", unit ? unit.callsign : d.resource_id),
      el("td", {}, `${cityName(d.donor_city)} → ${cityName(d.requesting_city)}`),
      el("td", {}, el("span", { class: `status ${d.status}` }, d.status)), el("td", {}, buttons));
  });
  $("deployments").tBodies[0].replaceChildren(...rows);
}
function fillFilters() {
  const cities = [...state.cities.values()].sort((a, b) => a.name.localeCompare(b.name));
  $("f-city").append(...cities.map((c) => el("option", { value: c.slug }, c.name)));
  $("f-capability").append(...state.capabilities.map((c) => el("option", { value: c.code }, c.code)));
  $("f-status").append(...["available", "offered", "mobilising", "en_route", "on_scene", "returning", "out_of_service"].map((s) => el("option", { value: s }, s)));
  for (const id of ["f-city", "f-capability", "f-status"]) $(id).addEventListener("change", queueRender);
}
function renderUnits() {
  const city = $("f-city").value, cap = $("f-capability").value, status = $("f-status").value;
  const rows = [...state.units.values()].filter((u) => (!city || u.city === city) && (!cap || u.capability === cap) && (!status || u.status === status));
  $("unit-count").textContent = `${rows.length} shown of ${state.units.size}`;
  $("units").tBodies[0].replaceChildren(...rows.slice(0, 400).map((u) => el("tr", { "data-unit": u.id },
    el("td", {}, exerciseTag(u.exercise), " ", u.callsign), el("td", {}, cityName(u.city)), el("td", {}, u.capability),
    el("td", {}, el("span", { class: `status ${u.status}` }, u.status)), el("td", { class: "muted" }, ago(u.status_since)))));
}
function describe(e) {
  if (e.type === "alert") return `alert: ${e.alert.title || e.alert.message || e.alert.rule || JSON.stringify(e.alert).slice(0, 80)}`;
  const p = e.payload || {};
  const what = p.callsign || p.title || (p.request ? `request #${p.request.id}` : "") || (p.id != null ? `#${p.id}` : "");
  const status = p.status ? ` → ${p.status}` : "";
  return `${e.type} ${what}${status}${e.city ? " · " + cityName(e.city) : ""}`;
}
function renderTimeline() {
  $("timeline").replaceChildren(...state.timeline.slice(0, 150).map((e) => el("li",
    { class: e.type.startsWith("alert") ? "alert" : e.type === "allocation.planned" ? "flag" : "", "data-seq": e.seq ?? "" },
    e.seq != null ? el("span", { class: "t-seq" }, e.seq) : null, exerciseTag(e.exercise), " ", describe(e),
    el("span", { class: "muted" }, ` ${ago(e.created_at)}`))));
}
function renderFlags() {
  $("flags-panel").hidden = !state.flags.length;
  $("flags").replaceChildren(...state.flags.map((f) => el("li", {}, `${cityName(f.city || "")} ${f.capability || ""}: ${f.reason || JSON.stringify(f)}`)));
}
function setupActions() {
  if (!canWrite()) return;
  $("post-request").hidden = false;
  $("pr-capability").append(...state.capabilities.map((c) => el("option", { value: c.code }, c.code)));
  $("post-request").addEventListener("submit", async (event) => {
    event.preventDefault();
    const incident = state.incidents.get(Number($("pr-incident").value));
    if (!incident) return;
    await act(api("POST", "/requests", { city: incident.city, incident_id: incident.id, priority: $("pr-priority").value,
      items: [{ capability: $("pr-capability").value, quantity: Number($("pr-quantity").value) }] }));
  });
}
function renderIncidentChoices() {
  const select = $("pr-incident");
  const keep = select.value;
  const mine = [...state.incidents.values()].filter((i) => forCity(i.city));
  select.replaceChildren(...mine.map((i) => el("option", { value: i.id }, `${i.exercise ? "[EXERCISE] " : ""}${cityName(i.city)}: ${i.title}`)));
  if (keep) select.value = keep;
}

// ---- the map (drawn here from region_50m.geojson; no tiles, no CDN) ----------------------------
const VIEW = { west: 12.5, east: 41.5, south: 33.8, north: 48.6, width: 1000 };
const K = Math.cos((41 * Math.PI) / 180);
VIEW.scale = VIEW.width / ((VIEW.east - VIEW.west) * K);
VIEW.height = (VIEW.north - VIEW.south) * VIEW.scale;
const project = (lon, lat) => [(lon - VIEW.west) * K * VIEW.scale, (VIEW.north - lat) * VIEW.scale];
async function drawMap() {
  const map = $("map");
  map.setAttribute("viewBox", `0 0 ${VIEW.width} ${Math.round(VIEW.height)}`);
  const geo = await (await fetch("/static/region_50m.geojson")).json();
  const land = svg("g", { class: "land-layer" });
  for (const f of geo.features) {
    const polys = f.geometry.type === "Polygon" ? [f.geometry.coordinates] : f.geometry.coordinates;
    const d = polys.map((rings) => rings.map((ring) => "M" + ring.map(([x, y]) => project(x, y).map((v) => v.toFixed(1)).join(",")).join("L") + "Z").join("")).join("");
    const path = svg("path", { d, class: "land" });
    path.append(Object.assign(svg("title"), { textContent: f.properties.name }));
    land.append(path);
  }
  map.append(land, svg("g", { id: "layer-deployments" }), svg("g", { id: "layer-cities" }), svg("g", { id: "layer-incidents" }));
}
function renderMapLayers() {
  if (!$("layer-cities")) return;
  const available = new Map(), busy = new Map();
  for (const u of state.units.values()) {
    const m = u.status === "available" ? available : busy;
    m.set(u.city, (m.get(u.city) || 0) + 1);
  }
  const cities = [];
  for (const c of state.cities.values()) {
    const [x, y] = project(c.lon, c.lat);
    const r = 2.5 + Math.sqrt(available.get(c.slug) || 0) * 1.5;
    const g = svg("g", { "data-city": c.slug });
    const dot = svg("circle", { cx: x, cy: y, r, class: "city" });
    dot.append(Object.assign(svg("title"), { textContent: `${c.name}: ${available.get(c.slug) || 0} available, ${busy.get(c.slug) || 0} committed` }));
    g.append(dot);
    if (busy.get(c.slug)) g.append(svg("circle", { cx: x + r + 2, cy: y - r, r: 2 + Math.sqrt(busy.get(c.slug)), class: "busy" }));
    const label = svg("text", { x: x + r + 2, y: y + 3, class: "city-label" });
    label.textContent = c.name;
    g.append(label);
    cities.push(g);
  }
  $("layer-cities").replaceChildren(...cities);
  $("layer-incidents").replaceChildren(...[...state.incidents.values()].map((i) => {
    const [x, y] = project(i.lon, i.lat);
    const g = svg("g", { "data-incident": i.id });
    const mark = svg("path", { d: `M${x},${y - 9}L${x + 8},${y + 6}L${x - 8},${y + 6}Z`, class: `incident${i.exercise ? " exercise" : ""}` });
    mark.append(Object.assign(svg("title"), { textContent: `${i.exercise ? "EXERCISE: " : ""}${i.title} (${i.severity})` }));
    const label = svg("text", { x: x + 10, y: y + 4, class: "incident-label" });
    label.textContent = i.exercise ? "EXERCISE" : i.kind;
    g.append(mark, label);
    return g;
  }));
  $("layer-deployments").replaceChildren(...[...state.deployments.values()].filter((d) => ["mobilising", "en_route", "on_scene"].includes(d.status)).map((d) => {
    const unit = state.units.get(d.resource_id);
    const from = unit ? [unit.home_lon, unit.home_lat] : null;
    const request = [...state.requests.values()].find((r) => r.items.some((l) => l.id === d.request_item_id));
    const incident = request && state.incidents.get(request.incident_id);
    const to = incident ? [incident.lon, incident.lat] : (state.cities.get(d.requesting_city) && [state.cities.get(d.requesting_city).lon, state.cities.get(d.requesting_city).lat]);
    if (!from || !to) return svg("g");
    const [x1, y1] = project(...from), [x2, y2] = project(...to);
    const line = svg("line", { x1, y1, x2, y2, class: `deploy ${d.status}`, "data-deployment": d.id });
    line.append(Object.assign(svg("title"), { textContent: `${unit.callsign}: ${d.status}` }));
    return line;
  }));
}

start();

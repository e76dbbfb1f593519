// The operations console: five sections over the worker's query API, one shown at a time
// (#overview, #alerts, #orders[/<id>], #reconciliation, #metrics). Every value is put into
// the page as text (never as HTML), so nothing an event carries can run here.

import { barChart, lineChart } from "./charts.js";
import * as fmt from "./format.js";

const REFRESH_MS = 5000;
const MAX_ROWS = 300;
const STATUS_ORDER = ["accepted", "backordered", "partially_allocated", "allocated", "picked",
  "packed", "partially_shipped", "shipped", "partially_delivered", "delivered",
  "partially_cancelled", "cancelled", "unknown"];
const HOUR_MS = 3_600_000;

// ---------------------------------------------------------------- DOM and HTTP helpers

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

const $ = (selector, root = document) => root.querySelector(selector);

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" }, ...options });
  } catch (err) {
    return { ok: false, status: 0, message: `the worker did not answer (${err.message})` };
  }
  let data = null;
  try { data = await response.json(); } catch { /* a body that is not JSON */ }
  const message = data?.error?.message || response.statusText;
  return { ok: response.ok, status: response.status, data, message };
}

// A sentence for a failed call that the section cannot work around.
function unavailable(path, result) {
  const endpoint = path.split("?")[0];
  if (result.status === 0) return `The worker is not reachable: ${result.message}.`;
  if (result.status === 503) {
    return `${endpoint} is not available yet (503: ${result.message}); the worker is probably `
      + "recovering its tables or catching up. Retrying every few seconds.";
  }
  if (result.status === 404) return `This worker does not serve ${endpoint} (404): ${result.message}.`;
  return `${endpoint} failed (${result.status}): ${result.message}.`;
}

function notice(box, text, kind = "error") {
  if (!box) return;
  box.hidden = !text;
  box.className = `notice ${kind}`;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.textContent = text || "";
}

function rows(tbody, trs, columns, emptyText) {
  tbody.replaceChildren(...(trs.length ? trs
    : [h("tr", {}, h("td", { colspan: columns, class: "empty" }, emptyText))]));
}

function num(value, text) {
  return h("td", { class: "num", "data-value": value }, text ?? fmt.count(value));
}

function moneyCell(minor, currency) {
  return h("td", { class: `num${minor < 0 ? " negative" : ""}`, "data-value": minor },
    fmt.money(minor, currency));
}

function orderLink(orderId) {
  if (!orderId) return h("span", { class: "muted" }, "–");
  return h("a", { href: `#orders/${encodeURIComponent(orderId)}`, class: "mono" }, orderId);
}

function runbookName(url) {
  const match = /([a-z0-9_]+)\.md$/.exec(url || "");
  return match ? match[1] : null;
}

function total(value) {
  // consumer_lag and similar may be a number or a breakdown ({topic: {partition: n}}).
  if (typeof value === "number") return value;
  if (value && typeof value === "object") {
    return Object.values(value).reduce((sum, v) => sum + (total(v) ?? 0), 0);
  }
  return null;
}

// ---------------------------------------------------------------- Overview

const epsSamples = [];

async function loadOverview() {
  const section = $("#overview");
  const result = await api("/overview");
  if (!result.ok) {
    notice($("[data-notice]", section), unavailable("/overview", result),
      result.status === 503 ? "warn" : "error");
    return;
  }
  const o = result.data;
  // A peer that did not answer leaves its partitions out: say the counts are partial.
  const missing = o.partitions_missing || [];
  notice($("[data-notice]", section), o.complete === false || missing.length
    ? `Partial counts: no answer for partition(s) ${missing.join(", ") || "?"}; see Workers.` : "",
  "warn");
  const show = (field, value, text) => {
    const dd = $(`[data-field="${field}"]`, section);
    dd.dataset.value = typeof value === "object" ? JSON.stringify(value) : String(value);
    dd.textContent = text;
    return dd;
  };
  show("orders_total", o.orders_total, fmt.count(o.orders_total));
  show("events_per_second", o.events_per_second, fmt.decimal(o.events_per_second, 1));
  const lag = show("consumer_lag", o.consumer_lag, fmt.count(total(o.consumer_lag)));
  lag.title = typeof o.consumer_lag === "object" ? JSON.stringify(o.consumer_lag) : "";
  show("dead_letters", o.dead_letters, fmt.count(total(o.dead_letters)));
  show("firing_alerts", o.firing_alerts, fmt.count(total(o.firing_alerts)))
    .classList.toggle("alarm", total(o.firing_alerts) > 0);
  show("as_of", o.as_of, typeof o.as_of === "number" ? fmt.isoTime(o.as_of) : String(o.as_of ?? "–"));
  setFiringPill(total(o.firing_alerts));

  const byStatus = o.orders_by_status || {};
  const statuses = [...STATUS_ORDER.filter((s) => s in byStatus),
    ...Object.keys(byStatus).filter((s) => !STATUS_ORDER.includes(s)).sort()];
  const most = Math.max(1, ...Object.values(byStatus));
  const sum = Object.values(byStatus).reduce((a, b) => a + b, 0) || 1;
  rows($("#orders-by-status tbody"), statuses.map((s) => h("tr", { "data-status": s },
    h("th", { scope: "row" }, s.replaceAll("_", " ")),
    num(byStatus[s]),
    h("td", {}, h("span", { class: "bar", style: `width:${(byStatus[s] / most) * 160}px` }),
      h("span", { class: "muted" }, ` ${fmt.decimal((byStatus[s] / sum) * 100, 0)} %`)))),
  3, "No orders yet.");

  if (typeof o.events_per_second === "number") {
    epsSamples.push([Date.now(), o.events_per_second]);
    if (epsSamples.length > 120) epsSamples.shift();
  }
  lineChart($("#eps-chart"), { series: [{ name: "events/s", points: epsSamples }],
    format: (v) => fmt.decimal(v, Number.isInteger(v) ? 0 : 1), label: "Events per second",
    emptyText: "Samples appear as the page refreshes." });
  renderWorkers(o.workers || []);
}

function renderWorkers(workers) {
  const table = $("#workers");
  const objects = workers.map((w) => (typeof w === "object" && w !== null ? w : { worker: w }));
  const columns = [...new Set(objects.flatMap((w) => Object.keys(w)))];
  table.tHead.replaceChildren(h("tr", {}, columns.map((c) =>
    h("th", { scope: "col" }, c.replaceAll("_", " ")))));
  rows(table.tBodies[0], objects.map((w) => h("tr", {}, columns.map((c) => {
    const v = w[c];
    return typeof v === "number" ? num(v, Number.isInteger(v) ? fmt.count(v) : fmt.decimal(v, 1))
      : h("td", {}, Array.isArray(v) ? v.join(", ")
        : typeof v === "object" && v !== null ? JSON.stringify(v) : String(v ?? "–"));
  }))), Math.max(1, columns.length), "No workers reported.");
}

function setFiringPill(n) {
  const pill = $("#tab-firing");
  pill.hidden = !n;
  pill.textContent = n ? String(n) : "";
  pill.setAttribute("aria-label", `${n} firing`);
}

// ---------------------------------------------------------------- Alerts and silences

const seenRules = new Set();

function alertQuery() {
  const form = $("#alert-filters");
  const params = new URLSearchParams({ limit: "500" });
  for (const name of ["state", "rule", "label"]) {
    const value = form.elements[name].value.trim();
    if (value) params.set(name, value);
  }
  return `/alerts?${params}`;
}

async function loadAlerts() {
  const section = $("#alerts");
  const path = alertQuery();
  const result = await api(path);
  if (!result.ok) {
    notice($("[data-notice]", section), result.status === 400
      ? `Filter not accepted: ${result.message}` : unavailable(path, result),
    result.status === 503 ? "warn" : "error");
  } else {
    notice($("[data-notice]", section), "");
    renderAlerts(result.data);
  }
  await loadSilences();
}

function renderAlerts(data) {
  const alerts = data.alerts || [];
  // Alerts live in stream time. A replay or generated traffic can run ahead of the wall clock;
  // ages are then taken from the newest time the alerts themselves show, never negative.
  const now = Math.max(Date.now(), ...alerts.map((a) => Math.max(a.starts_at, a.ends_at ?? 0)));
  for (const a of alerts) seenRules.add(a.rule);
  const ruleSelect = $("#alert-filters").elements.rule;
  const known = new Set([...ruleSelect.options].map((o) => o.value));
  for (const rule of [...seenRules].sort()) {
    if (!known.has(rule)) ruleSelect.append(h("option", { value: rule }, rule));
  }
  const firing = alerts.filter((a) => a.state === "firing").length;
  const matched = data.matched ?? data.count ?? alerts.length;
  $("#alerts-summary").textContent = `${fmt.count(alerts.length)} shown of ${fmt.count(matched)} `
    + `matching (${fmt.count(firing)} firing, ${fmt.count(alerts.length - firing)} resolved).`;
  rows($("#alerts-table tbody"), alerts.map((a) => alertRow(a, now)), 8,
    "No alerts match these filters.");
}

function alertRow(a, now) {
  const age = a.state === "firing"
    ? `firing for ${fmt.duration(now - a.starts_at)}`
    : `resolved ${fmt.duration(now - (a.ends_at ?? a.starts_at))} ago, lasted ${fmt.duration((a.ends_at ?? a.starts_at) - a.starts_at)}`;
  const book = runbookName(a.runbook_url);
  let silence;
  if (a.silenced_by) {
    silence = h("span", { class: "silenced", "data-silenced-by": a.silenced_by },
      `Silenced (${String(a.silenced_by).slice(0, 8)})`);
  } else if (a.state === "firing") {
    silence = h("button", { type: "button", class: "small",
      "aria-label": `Silence ${a.rule}${a.order_id ? ` for order ${a.order_id}` : ""}`,
      onclick: () => openSilenceDialog(a) }, "Silence");
  } else {
    silence = h("span", { class: "muted" }, "–");
  }
  return h("tr", { "data-fingerprint": a.fingerprint, "data-state": a.state,
    "data-order-id": a.order_id || "" },
  h("td", {}, h("span", { class: `sev sev-${a.severity}` }, a.severity)),
  h("td", { class: "mono" }, a.rule),
  h("td", {}, a.summary),
  h("td", {}, orderLink(a.order_id)),
  h("td", {}, Object.entries(a.labels || {}).sort().map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`))),
  h("td", { title: `started ${fmt.isoTime(a.starts_at)}` }, age),
  h("td", {}, book ? h("a", { href: `/runbooks/${book}`, "aria-label": `Runbook for ${a.rule}` }, "Runbook")
    : h("span", { class: "muted" }, a.runbook_url || "–")),
  h("td", {}, silence));
}

// The narrowest silence that covers this alert: its rule and order, or its rule and labels.
function matchersFor(alert) {
  const matchers = [{ label: "rule", op: "=", value: alert.rule }];
  if (alert.order_id) {
    matchers.push({ label: "order_id", op: "=", value: alert.order_id });
  } else {
    for (const [k, v] of Object.entries(alert.labels || {}).sort()) {
      if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) matchers.push({ label: k, op: "=", value: v });
    }
  }
  return matchers;
}

let silenceTarget = null;

function openSilenceDialog(alert) {
  silenceTarget = alert;
  const dialog = $("#silence-dialog");
  const form = $("#silence-form");
  $("#silence-target").textContent = alert.summary;
  $("#silence-matchers").textContent = matchersFor(alert).map((m) => `${m.label}${m.op}${m.value}`).join(", ");
  form.elements.created_by.value = localStorage.getItem("fstreams.console.user") || "";
  form.elements.comment.value = "";
  notice($("[data-notice-dialog]"), "");
  dialog.showModal();
  (form.elements.created_by.value ? form.elements.comment : form.elements.created_by).focus();
}

async function submitSilence(event) {
  event.preventDefault();
  const form = event.target;
  const alert = silenceTarget;
  if (!alert || !form.reportValidity()) return;
  const button = $("button[type=submit]", form);
  button.disabled = true;
  localStorage.setItem("fstreams.console.user", form.elements.created_by.value);
  const result = await api("/silences", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ matchers: matchersFor(alert), duration: form.elements.duration.value,
      created_by: form.elements.created_by.value, comment: form.elements.comment.value }),
  });
  button.disabled = false;
  if (!result.ok) {
    notice($("[data-notice-dialog]"), result.status === 400 ? `Not accepted: ${result.message}`
      : unavailable("/silences", result));
    return;
  }
  $("#silence-dialog").close();
  const id = result.data?.silence_id || result.data?.silence?.silence_id || "";
  notice($("#alerts [data-notice]"), `Silence ${id} created for ${alert.rule}`
    + `${alert.order_id ? ` on order ${alert.order_id}` : ""}.`, "ok");
  await loadAlerts();
}

async function loadSilences() {
  const box = $("[data-notice-silences]");
  const result = await api("/silences");
  if (!result.ok) {
    notice(box, unavailable("/silences", result), result.status === 503 ? "warn" : "error");
    return;
  }
  notice(box, "");
  const now = Date.now();
  const silences = (Array.isArray(result.data) ? result.data : result.data?.silences || [])
    .filter((s) => (s.state ? s.state === "active" : s.starts_at <= now && now < s.ends_at));
  rows($("#silences-table tbody"), silences.map((s) => h("tr", { "data-silence-id": s.silence_id },
    h("td", { class: "mono" }, (s.matchers || []).map((m) =>
      typeof m === "string" ? m : `${m.label}${m.op}${m.value}`).join(", ")),
    h("td", {}, `${fmt.isoTime(s.ends_at)} (in ${fmt.duration(s.ends_at - now)})`),
    h("td", {}, s.created_by || "–"),
    h("td", {}, s.comment || ""),
    h("td", {}, h("button", { type: "button", class: "small",
      "aria-label": `Expire silence ${s.silence_id}`,
      onclick: () => expireSilence(s.silence_id) }, "Expire")))), 5, "No active silences.");
}

async function expireSilence(id) {
  const result = await api(`/silences/${encodeURIComponent(id)}`, { method: "DELETE" });
  notice($("#alerts [data-notice]"), result.ok ? `Silence ${id} expired.`
    : unavailable(`/silences/${id}`, result), result.ok ? "ok" : "error");
  await loadAlerts();
}

// ---------------------------------------------------------------- Order lookup

let currentOrderQuery = null;

async function lookup(query) {
  const section = $("#orders");
  const box = $("[data-notice]", section);
  const out = $("#order-result");
  query = query.trim();
  currentOrderQuery = query;
  $("#order-query").value = query;
  if (!query) return;
  notice(box, `Looking up ${query} …`, "ok");
  const order = await api(`/orders/${encodeURIComponent(query)}`);
  if (order.ok || (order.status === 404 && /orphan/.test(order.message))) {
    notice(box, "");
    return showOrder(query, order);
  }
  if (order.status !== 404 && order.status !== 400) {
    out.replaceChildren();
    return notice(box, unavailable("/orders/{order_id}", order), order.status === 503 ? "warn" : "error");
  }
  // Not an order id: look for alerts and mismatches raised by an event with this correlation id.
  const q = encodeURIComponent(query);
  const [alerts, mismatches] = await Promise.all([
    api(`/alerts?correlation_id=${q}&limit=100`), api(`/mismatches?correlation_id=${q}&limit=100`)]);
  const ids = [...new Set([...(alerts.data?.alerts || []), ...(mismatches.data?.mismatches || [])]
    .map((r) => r.order_id).filter(Boolean))].sort();
  const gaps = [[alerts, "/alerts"], [mismatches, "/mismatches"]].filter(([r]) => !r.ok)
    .map(([r, path]) => unavailable(path, r));
  if (ids.length === 1) {
    notice(box, `Correlation id ${query} belongs to order ${ids[0]}.`, "ok");
    return showOrder(ids[0], await api(`/orders/${encodeURIComponent(ids[0])}`), query);
  }
  if (ids.length > 1) {
    notice(box, `Correlation id ${query} belongs to ${ids.length} orders:`, "ok");
    return out.replaceChildren(h("ul", {}, ids.map((id) => h("li", {}, orderLink(id)))));
  }
  out.replaceChildren();
  notice(box, [`No order ${query}: ${order.message}. No alert or mismatch carries it as a `
    + "correlation id either.", ...gaps].join(" "), gaps.length ? "error" : "warn");
}

async function showOrder(orderId, order, viaCorrelation) {
  const out = $("#order-result");
  const timeline = await api(`/orders/${encodeURIComponent(orderId)}/timeline`);
  const parts = [];
  if (order.ok) {
    parts.push(...orderState(order.data, viaCorrelation));
  } else {
    parts.push(h("h2", {}, `Order ${orderId}`), h("p", { class: "notice" }, order.message));
  }
  parts.push(h("h3", { id: "timeline-title" }, "Timeline"));
  if (timeline.ok) {
    parts.push(...timelineView(timeline.data.events || []));
  } else {
    parts.push(h("p", { class: "notice error" }, unavailable("/orders/{order_id}/timeline", timeline)));
  }
  out.replaceChildren(...parts.filter(Boolean));
}

function orderState(s, viaCorrelation) {
  const cur = s.currency;
  const badge = (text, kind) => h("span", { class: `badge ${kind || ""}` }, text);
  const facts = [
    ["Channel", s.channel], ["External ref", s.external_order_ref], ["Customer", s.customer_ref],
    ["Order total", fmt.money(s.order_total, cur)], ["Expected charge", fmt.money(s.expected_charge, cur)],
    ["Charged", fmt.money(s.charged_amount, cur)], ["Expected refund", fmt.money(s.expected_refund, cur)],
    ["Refunded", fmt.money(s.refunded_amount, cur)], ["Fees", fmt.money(s.fee_amount, cur)],
    ["Chargebacks", fmt.money(s.chargeback_amount, cur)],
    ["Accepted", fmt.isoTime(s.accepted_at)], ["Promised ship by", fmt.isoTime(s.promised_ship_by)],
    ["Shipped", fmt.isoTime(s.shipped_at)], ["Promised deliver by", fmt.isoTime(s.promised_deliver_by)],
    ["Delivered", fmt.isoTime(s.delivered_at)], ["Cancelled", fmt.isoTime(s.cancelled_at)],
    ["Warehouses", (s.warehouses || []).join(", ")], ["Carriers", (s.carriers || []).join(", ")],
    ["Tracking", (s.tracking_numbers || []).join(", ")],
    ["Source systems", (s.source_systems || []).join(", ")],
    ["Version", s.version], ["Updated", fmt.isoTime(s.updated_at)],
  ].filter(([, v]) => v !== null && v !== undefined && v !== "");
  const lineCols = ["ordered", "cancelled", "backordered", "allocated", "picked", "packed",
    "shipped", "delivered", "returned", "refunded", "substituted"];
  const parts = [
    h("h2", { id: "order-title", "data-order-id": s.order_id }, `Order ${s.order_id}`),
    viaCorrelation ? h("p", { class: "muted" }, `found through correlation id ${viaCorrelation}`) : null,
    h("p", { class: "statuses" },
      badge(`fulfillment: ${s.fulfillment_status}`), badge(`returns: ${s.returns_status}`),
      badge(`financial: ${s.financial_status}`),
      badge(s.reconciled ? "reconciled" : "not reconciled", s.reconciled ? "good" : "bad"),
      (s.flags || []).map((f) => badge(f, "bad"))),
    h("div", { class: "grid2" },
      h("div", { class: "panel" }, h("h3", {}, "Facts"),
        h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]))),
      h("div", { class: "panel" }, h("h3", {}, "Open issues"),
        issuesView(s))),
    h("h3", { id: "lines-title" }, "Lines"),
    h("table", { class: "data", id: "order-lines", "aria-labelledby": "lines-title" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Line"), h("th", { scope: "col" }, "SKU"),
        h("th", { scope: "col", class: "num" }, "Unit price"),
        lineCols.map((c) => h("th", { scope: "col", class: "num" }, c)))),
      h("tbody", {}, (s.lines || []).map((l) => h("tr", { "data-line-id": l.line_id },
        h("th", { scope: "row", class: "mono" }, l.line_id),
        h("td", {}, l.substituted_sku ? `${l.sku ?? "–"} → ${l.substituted_sku}` : (l.sku ?? "–")),
        moneyCell(l.unit_price, cur),
        lineCols.map((c) => num(l[c] ?? 0)))))),
  ];
  return parts;
}

function issuesView(s) {
  const items = [
    ...(s.open_exceptions || []).map((e) => h("li", {},
      `Shipment ${e.shipment_id} in exception since ${fmt.isoTime(e.since)}${e.reason ? `: ${e.reason}` : ""}`)),
    ...(s.open_mismatches || []).map((m) => h("li", {},
      `Mismatch ${m.category}: expected ${fmt.money(m.expected, m.currency)}, settled `
      + `${fmt.money(m.actual, m.currency)} (${fmt.money(m.difference, m.currency)})`)),
    ...(s.alerts || []).map((a) => {
      const book = runbookName(a.runbook_url);
      return h("li", {}, h("span", { class: `sev sev-${a.severity}` }, a.severity), " ",
        a.summary || a.rule, book ? [" · ", h("a", { href: `/runbooks/${book}` }, "runbook")] : null);
    }),
  ];
  return items.length ? h("ul", {}, items) : h("p", { class: "muted" }, "Nothing open.");
}

function timelineView(events) {
  if (!events.length) return [h("p", { class: "muted" }, "No events.")];
  const sources = [...new Set(events.map((e) => e.source_system))];
  const kinds = [...new Set(events.map((e) => e.kind))];
  const W = 900, L = 150, R = 16, lane = 26, T = 8;
  const H = T * 2 + lane * sources.length + 18;
  const t0 = events[0].event_time, t1 = Math.max(events[events.length - 1].event_time, t0 + 1);
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  const put = (parent, name, attrs, text) => {
    const node = document.createElementNS(NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    parent.append(node);
    return node;
  };
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.style.maxWidth = `${W}px`; // drawn at its own size on wide screens, shrunk on narrow ones
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Events by source system: ${events.length} events from ${sources.length} systems`);
  sources.forEach((src, i) => {
    const y = T + i * lane + lane / 2;
    put(svg, "line", { class: "grid", x1: L, x2: W - R, y1: y, y2: y });
    put(svg, "text", { x: L - 8, y: y + 4, "text-anchor": "end" }, src);
  });
  put(svg, "text", { x: L, y: H - 4 }, fmt.isoTime(t0));
  put(svg, "text", { x: W - R, y: H - 4, "text-anchor": "end" }, fmt.isoTime(t1));
  const colors = ["var(--s1)", "var(--s2)", "var(--s3)", "var(--s4)"];
  for (const e of events) {
    const y = T + sources.indexOf(e.source_system) * lane + lane / 2;
    const dot = put(svg, "circle", { cx: x(e.event_time), cy: y, r: 5, class: "event",
      fill: colors[kinds.indexOf(e.kind) % colors.length] });
    put(dot, "title", {}, `${fmt.isoTime(e.event_time)} ${e.source_system}: ${e.kind} ${e.what} — ${e.effect}`);
  }
  const legend = h("ul", { class: "legend" }, kinds.map((k, i) => h("li", {},
    h("span", { class: "swatch", style: `background:${colors[i % colors.length]}` }), k)));
  const figure = h("figure", { class: "chart", id: "timeline-chart" }, svg, legend);
  const table = h("table", { class: "data", id: "order-timeline", "aria-labelledby": "timeline-title" },
    h("thead", {}, h("tr", {}, ["Event time", "Source system", "Kind", "What", "Effect", "Event id"]
      .map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, events.map((e) => h("tr", { "data-event-id": e.event_id },
      h("td", { class: "mono" }, fmt.isoTime(e.event_time)), h("td", {}, e.source_system),
      h("td", {}, e.kind), h("td", {}, e.what), h("td", {}, e.effect),
      h("td", { class: "mono muted" }, e.event_id)))));
  return [figure, table];
}

// ---------------------------------------------------------------- Reconciliation

const seenProviders = new Set();
const seenCategories = new Set();

function addOptions(select, values) {
  const known = new Set([...select.options].map((o) => o.value));
  for (const v of [...values].sort()) if (!known.has(v)) select.append(h("option", { value: v }, v));
}

function mismatchQuery() {
  const form = $("#mismatch-filters");
  const params = new URLSearchParams({ limit: "10000" });
  for (const name of ["status", "provider", "category"]) {
    const value = form.elements[name].value;
    if (value) params.set(name, value);
  }
  return `/mismatches?${params}`;
}

async function loadReconciliation() {
  const section = $("#reconciliation");
  const path = mismatchQuery();
  const result = await api(path);
  if (!result.ok) {
    return notice($("[data-notice]", section), result.status === 400
      ? `Filter not accepted: ${result.message}` : unavailable(path, result),
    result.status === 503 ? "warn" : "error");
  }
  notice($("[data-notice]", section), "");
  const { mismatches = [], totals = {} } = result.data;
  const matched = result.data.matched ?? result.data.count ?? mismatches.length;
  for (const m of mismatches) {
    if (m.provider) seenProviders.add(m.provider);
    seenCategories.add(m.category);
  }
  const form = $("#mismatch-filters");
  addOptions(form.elements.provider, seenProviders);
  addOptions(form.elements.category, seenCategories);

  const counts = new Map();
  for (const m of mismatches) {
    const key = `${m.category} ${m.currency}`;
    counts.set(key, (counts.get(key) || 0) + 1);
  }
  const byCategory = Object.entries(totals).flatMap(([currency, cats]) =>
    Object.entries(cats).map(([category, diff]) => ({ category, currency, diff })))
    .sort((a, b) => a.category.localeCompare(b.category) || a.currency.localeCompare(b.currency));
  rows($("#mismatch-categories tbody"), byCategory.map((r) => h("tr", {
    "data-category": r.category, "data-currency": r.currency },
  h("th", { scope: "row" }, r.category.replaceAll("_", " ")), h("td", {}, r.currency),
  num(counts.get(`${r.category} ${r.currency}`) ?? 0), moneyCell(r.diff, r.currency))), 4,
  "No mismatches match these filters.");

  const shown = mismatches.slice(0, MAX_ROWS);
  $("#mismatch-summary").textContent = `${fmt.count(shown.length)} shown of `
    + `${fmt.count(matched)} matching${matched > shown.length ? " (narrow the filters to see the rest)" : ""}.`;
  rows($("#mismatch-table tbody"), shown.map((m) => h("tr", { "data-mismatch-id": m.mismatch_id },
    h("td", {}, orderLink(m.order_id)), h("td", {}, m.category), h("td", {}, m.status),
    h("td", {}, m.provider || "–"), moneyCell(m.expected, m.currency), moneyCell(m.actual, m.currency),
    moneyCell(m.difference, m.currency),
    h("td", { class: "mono" }, fmt.isoTime(m.detected_at)))), 8, "No mismatches match these filters.");
}

// ---------------------------------------------------------------- Metrics

async function loadMetrics() {
  const section = $("#metrics");
  const size = Number($("#metric-filters").elements.window.value);
  const names = ["order_to_ship_ms", "shipment_exception_rate", "orders_accepted", "units_shipped"];
  const results = await Promise.all(names.map((n) => api(`/metrics/windows?name=${n}`)));
  const failed = results.find((r) => !r.ok);
  if (failed) {
    return notice($("[data-notice]", section), unavailable("/metrics/windows", failed),
      failed.status === 503 ? "warn" : "error");
  }
  notice($("[data-notice]", section), "");
  const of = (i) => (results[i].data.windows || [])
    .filter((w) => w.window_end - w.window_start === size)
    .sort((a, b) => a.window_start - b.window_start);
  const [latency, exceptions, accepted, shipped] = [0, 1, 2, 3].map(of);
  const waiting = "No closed windows yet: a window is published once stream time passes its end "
    + "plus the grace period.";

  const overall = latency.filter((w) => w.group_key === "").slice(-240);
  lineChart($("#latency-chart"), {
    series: ["p50", "p95", "p99"].map((p) => ({ name: p,
      points: overall.filter((w) => w[p] !== null).map((w) => [w.window_start, w[p]]) })),
    format: (h) => `${fmt.decimal(h, Number.isInteger(h) ? 0 : 1)} h`, divisor: HOUR_MS,
    maxGap: size, label: "Order-to-ship latency percentiles", emptyText: waiting });

  const perWarehouse = new Map();
  for (const w of exceptions) {
    const name = w.labels?.warehouse ?? w.group_key;
    const agg = perWarehouse.get(name) || { count: 0, sum: 0 };
    agg.count += w.count; agg.sum += w.sum;
    perWarehouse.set(name, agg);
  }
  barChart($("#exceptions-chart"), {
    bars: [...perWarehouse].filter(([, a]) => a.count > 0)
      .map(([label, a]) => ({ label, value: a.sum / a.count,
        note: `${fmt.count(a.sum)} of ${fmt.count(a.count)} shipments` }))
      .sort((a, b) => b.value - a.value),
    format: fmt.percent, label: "Shipment exception rate per warehouse", emptyText: waiting });

  const perWindow = (windows, field) => {
    const sums = new Map();
    for (const w of windows) sums.set(w.window_start, (sums.get(w.window_start) || 0) + w[field]);
    return [...sums].sort((a, b) => a[0] - b[0]).slice(-240);
  };
  lineChart($("#throughput-chart"), {
    series: [{ name: `orders accepted per ${size === HOUR_MS ? "hour" : "minute"}`, points: perWindow(accepted, "count") },
      { name: `units shipped per ${size === HOUR_MS ? "hour" : "minute"}`, points: perWindow(shipped, "sum") }],
    format: (v) => fmt.decimal(v, Number.isInteger(v) ? 0 : 1), maxGap: size,
    label: "Throughput", emptyText: waiting });
}

// ---------------------------------------------------------------- Navigation and refresh

const SECTIONS = { overview: loadOverview, alerts: loadAlerts, orders: refreshOrder,
  reconciliation: loadReconciliation, metrics: loadMetrics };
let active = null;
let busy = false;
let again = false; // a refresh was asked for while one ran (e.g. the section changed)

async function refreshOrder() {
  if (currentOrderQuery) await lookup(currentOrderQuery);
}

function route() {
  const [name, ...rest] = location.hash.slice(1).split("/");
  const section = name in SECTIONS ? name : "overview";
  for (const s of Object.keys(SECTIONS)) $(`#${s}`).hidden = s !== section;
  for (const a of document.querySelectorAll(".tabs a")) {
    if (a.dataset.section === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  active = section;
  if (section === "orders" && rest.length) {
    currentOrderQuery = decodeURIComponent(rest.join("/"));
  }
  refresh();
}

async function refresh() {
  if (busy) {
    again = true;
    return;
  }
  busy = true;
  try {
    do {
      again = false;
      await SECTIONS[active]();
      if (active !== "overview") await pill();
    } while (again);
    $("#updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } finally {
    busy = false;
  }
}

// The firing count in the tab stays live whatever section is shown.
async function pill() {
  const result = await api("/overview");
  if (result.ok) setFiringPill(total(result.data.firing_alerts));
}

function init() {
  $("#alert-filters").addEventListener("submit", (e) => { e.preventDefault(); loadAlerts(); });
  $("#alert-filters").addEventListener("change", () => loadAlerts());
  $("#mismatch-filters").addEventListener("submit", (e) => { e.preventDefault(); loadReconciliation(); });
  $("#mismatch-filters").addEventListener("change", () => loadReconciliation());
  $("#metric-filters").addEventListener("change", () => loadMetrics());
  $("#order-search").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("#order-query").value.trim();
    if (!q) return;
    const hash = `#orders/${encodeURIComponent(q)}`;
    if (location.hash === hash) lookup(q); else location.hash = hash;
  });
  $("#silence-form").addEventListener("submit", submitSilence);
  $("#silence-cancel").addEventListener("click", () => $("#silence-dialog").close());
  window.addEventListener("hashchange", route);
  setInterval(() => {
    // An order is looked up on demand; the other sections follow the stream.
    if ($("#auto-refresh").checked && active !== "orders" && !$("#silence-dialog").open) refresh();
  }, REFRESH_MS);
  route();
}

init();

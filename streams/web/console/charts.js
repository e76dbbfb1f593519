// Small inline-SVG charts (no library): a time-series line chart and a horizontal bar chart.
// Each draws into a <figure>, names itself for screen readers (role="img" + aria-label) and
// puts every value in a <title> so hovering a point shows it.

const NS = "http://www.w3.org/2000/svg";
const COLORS = ["var(--s1)", "var(--s2)", "var(--s3)", "var(--s4)", "var(--s5)", "var(--s6)"];

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

// About `count` round tick values from lo up to the first at or above hi.
function ticks(lo, hi, count = 5) {
  if (hi <= lo) hi = lo + 1;
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let i = Math.ceil(lo / step); out.length === 0 || out[out.length - 1] < hi; i += 1) {
    out.push(Number((i * step).toPrecision(12)));
  }
  return out;
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
  21600, 43200, 86400, 172800, 604800, 1209600, 2592000].map((s) => s * 1000);

// Round times (whole minutes, hours, days in UTC) inside [lo, hi]: the axis is not stretched.
function timeTicks(lo, hi, count) {
  const raw = (hi - lo) / count;
  const step = TIME_STEPS.find((s) => s >= raw) || TIME_STEPS[TIME_STEPS.length - 1];
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi; v += step) out.push(v);
  return out;
}

function empty(figure, message) {
  figure.replaceChildren();
  const p = document.createElement("p");
  p.className = "muted";
  p.textContent = message;
  figure.append(p);
}

function legend(figure, names) {
  const ul = document.createElement("ul");
  ul.className = "legend";
  names.forEach((name, i) => {
    const li = document.createElement("li");
    const sw = document.createElement("span");
    sw.className = "swatch";
    sw.style.background = COLORS[i % COLORS.length];
    li.append(sw, name);
    ul.append(li);
  });
  figure.append(ul);
}

function timeLabel(ms, spanMs) {
  const iso = new Date(ms).toISOString();
  if (spanMs > 86_400_000) return iso.slice(5, 10) + " " + iso.slice(11, 16);
  return spanMs > 600_000 ? iso.slice(11, 16) : iso.slice(11, 19);
}

/**
 * series: [{name, points: [[timeMs, value], ...]}] in time order. format(value) labels the
 * y axis in units of value / divisor (e.g. ms shown in hours, with round ticks in hours).
 * Consecutive points further apart than maxGap ms are not joined: no data is not a trend.
 */
export function lineChart(figure, { series, format, label, emptyText, divisor = 1, maxGap = Infinity }) {
  const drawn = series.filter((s) => s.points.length);
  if (!drawn.length) return empty(figure, emptyText || "No data yet.");
  const W = 640, H = 240, L = 64, R = 12, T = 10, B = 26;
  const xs = drawn.flatMap((s) => s.points.map((p) => p[0]));
  const ys = drawn.flatMap((s) => s.points.map((p) => p[1] / divisor));
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  if (x0 === x1) { x0 -= 1; x1 += 1; }
  const yt = ticks(0, Math.max(...ys, 0));
  const y1 = yt[yt.length - 1] || 1;
  const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y) => H - B - (y / divisor / y1) * (H - T - B);
  const points = drawn.reduce((n, s) => n + s.points.length, 0);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${label}: ${drawn.length} series, ${points} points`,
    "data-series": drawn.length, "data-points": points });
  for (const v of yt) {
    svg.append(el("line", { class: "grid", x1: L, x2: W - R, y1: sy(v * divisor), y2: sy(v * divisor) }));
    svg.append(el("text", { x: L - 6, y: sy(v * divisor) + 4, "text-anchor": "end" }, format(v)));
  }
  for (const v of timeTicks(x0, x1, 5)) {
    const x = sx(v);
    const anchor = x > W - R - 40 ? "end" : x < L + 40 ? "start" : "middle";
    svg.append(el("text", { x, y: H - 8, "text-anchor": anchor }, timeLabel(v, x1 - x0)));
  }
  svg.append(el("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  drawn.forEach((s, i) => {
    const color = COLORS[series.indexOf(s) % COLORS.length];
    const d = s.points.map((p, j) => `${j && p[0] - s.points[j - 1][0] <= maxGap ? "L" : "M"}`
      + `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join("");
    svg.append(el("path", { d, fill: "none", stroke: color, "stroke-width": 2, class: "series",
      "data-name": s.name }));
    for (const [x, y] of s.points) {
      const c = el("circle", { cx: sx(x), cy: sy(y), r: 2.6, fill: color, class: "point",
        "data-value": y });
      c.append(el("title", {}, `${s.name} ${new Date(x).toISOString()}: ${format(y / divisor)}`));
      svg.append(c);
    }
  });
  figure.replaceChildren(svg);
  legend(figure, series.map((s) => s.name));
}

/** bars: [{label, value, note}]; format(value) labels each bar. */
export function barChart(figure, { bars, format, label, emptyText }) {
  if (!bars.length) return empty(figure, emptyText || "No data yet.");
  const W = 640, row = 24, L = 170, R = 90, T = 6;
  const H = T * 2 + row * bars.length;
  const max = Math.max(...bars.map((b) => b.value), 0) || 1;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${label}: ${bars.length} bars`, "data-points": bars.length });
  bars.forEach((b, i) => {
    const y = T + i * row;
    const w = Math.max(1, (b.value / max) * (W - L - R));
    svg.append(el("text", { x: L - 8, y: y + 16, "text-anchor": "end" }, b.label));
    const rect = el("rect", { x: L, y: y + 4, width: w, height: row - 8, rx: 2,
      fill: COLORS[0], class: "point", "data-value": b.value, "data-label": b.label });
    rect.append(el("title", {}, `${b.label}: ${format(b.value)}${b.note ? ` (${b.note})` : ""}`));
    svg.append(rect);
    svg.append(el("text", { x: L + w + 6, y: y + 16 }, format(b.value)));
  });
  figure.replaceChildren(svg);
}

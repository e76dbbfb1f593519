// Formatting for the console: counts, money in integer minor units, times and durations.

// ISO 4217 minor-unit exponents that differ from 2 (the currencies tables/ accepts). The
// browser's Intl data follows CLDR, which differs from ISO for some codes (IQD, LAK, ...), so
// the exponent is not taken from Intl.
const EXPONENT = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0, UGX: 0,
  VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
};

const grouping = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

export function exponentOf(currency) {
  return EXPONENT[currency] ?? 2;
}

export function count(n) {
  return n === null || n === undefined ? "–" : grouping.format(n);
}

export function decimal(n, digits = 1) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

// "EUR 1,234.50", "JPY 1,200", "KWD -0.125": exact, from the integer, never through a float.
export function money(minor, currency) {
  if (minor === null || minor === undefined) return "–";
  const exp = exponentOf(currency);
  const negative = minor < 0;
  const digits = String(Math.abs(minor)).padStart(exp + 1, "0");
  const whole = digits.slice(0, digits.length - exp);
  const frac = exp ? "." + digits.slice(digits.length - exp) : "";
  return `${currency} ${negative ? "-" : ""}${grouping.format(BigInt(whole))}${frac}`;
}

export function isoTime(ms) {
  if (ms === null || ms === undefined) return "–";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d{3}Z$/, "Z");
}

// 93784000 -> "1d 2h", 4500000 -> "1h 15m", 42000 -> "42s".
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  const sign = ms < 0 ? "-" : "";
  let s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400); s -= d * 86400;
  const h = Math.floor(s / 3600); s -= h * 3600;
  const m = Math.floor(s / 60); s -= m * 60;
  if (d) return `${sign}${d}d ${h}h`;
  if (h) return `${sign}${h}h ${m}m`;
  if (m) return `${sign}${m}m ${s}s`;
  return `${sign}${s}s`;
}

export function percent(ratio) {
  return ratio === null || ratio === undefined ? "–" : `${decimal(ratio * 100, 1)} %`;
}

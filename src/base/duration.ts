// Go's time.ParseDuration, which Consul uses for `?wait`, `?max_stale` and every duration string (the
// HTTP layer, the configuration and the session timers all parse them, so it lives in base):
// "300ms", "1.5h", "2h45m", "-1m", "0". A sequence of decimal numbers, each with an optional fraction
// and a unit (ns, us, µs, μs, ms, s, m, h), with an optional leading sign; a bare "0" needs no unit.
// Kept exact with bigint nanoseconds and Go's overflow rule (|d| must fit in an int64).

export type DurationParse =
  | { readonly ok: true; readonly nanoseconds: bigint }
  | { readonly ok: false; readonly error: string };

const unitNanoseconds: ReadonlyMap<string, bigint> = new Map([
  ['ns', 1n],
  ['us', 1_000n],
  ['\u00b5s', 1_000n], // U+00B5 micro sign
  ['\u03bcs', 1_000n], // U+03BC Greek small letter mu
  ['ms', 1_000_000n],
  ['s', 1_000_000_000n],
  ['m', 60_000_000_000n],
  ['h', 3_600_000_000_000n],
]);

const maxInt64 = (1n << 63n) - 1n;

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

/** Go's strconv.Quote for the texts that appear here (durations typed by people). */
function quote(text: string): string {
  return JSON.stringify(text);
}

/**
 * Go's leadingFraction and `uint64(float64(f) * (float64(unit) / scale))`: digits are taken while the
 * integer stays below 2^63 (later ones are dropped), then one float64 product, truncated. Kept in
 * float64 on purpose so that "0.3333333333333333333h" is exactly 20m, as in Go.
 */
function fractionNanoseconds(digits: string, unit: bigint): bigint {
  let f = 0n;
  let scale = 1;
  for (const c of digits) {
    if (f > (1n << 63n) / 10n) break;
    const next = f * 10n + BigInt(c);
    if (next > 1n << 63n) break;
    f = next;
    scale *= 10;
  }
  return BigInt(Math.trunc(Number(f) * (Number(unit) / scale)));
}

export function parseGoDuration(text: string): DurationParse {
  const invalid: DurationParse = { ok: false, error: `time: invalid duration ${quote(text)}` };
  let s = text;
  let negative = false;
  if (s.startsWith('-') || s.startsWith('+')) {
    negative = s[0] === '-';
    s = s.slice(1);
  }
  if (s === '0') return { ok: true, nanoseconds: 0n };
  if (s === '') return invalid;
  let total = 0n;
  while (s !== '') {
    if (!(s[0] === '.' || isDigit(s[0]))) return invalid;
    let i = 0;
    while (isDigit(s[i])) i++;
    const whole = s.slice(0, i);
    s = s.slice(i);
    let fraction = '';
    if (s.startsWith('.')) {
      s = s.slice(1);
      let j = 0;
      while (isDigit(s[j])) j++;
      fraction = s.slice(0, j);
      s = s.slice(j);
    }
    if (whole === '' && fraction === '') return invalid; // ".s" or "-.s"
    let u = 0;
    while (u < s.length && s[u] !== '.' && !isDigit(s[u])) u++;
    if (u === 0) return { ok: false, error: `time: missing unit in duration ${quote(text)}` };
    const unitName = s.slice(0, u);
    s = s.slice(u);
    const unit = unitNanoseconds.get(unitName);
    if (unit === undefined) return { ok: false, error: `time: unknown unit ${quote(unitName)} in duration ${quote(text)}` };
    const wholeValue = whole === '' ? 0n : BigInt(whole);
    let value = wholeValue * unit;
    if (fraction !== '') value += fractionNanoseconds(fraction, unit);
    total += value;
    if (total > maxInt64 + 1n) return invalid;
  }
  if (negative) return { ok: true, nanoseconds: -total };
  if (total > maxInt64) return invalid;
  return { ok: true, nanoseconds: total };
}

/** Go's time.Duration.String for a whole number of milliseconds: "0s", "10s", "1m30s", "24h0m0s", "500ms", "1.5s". */
export function goDurationString(ms: number): string {
  if (ms === 0) return '0s';
  if (ms < 1000) return `${ms}ms`;
  const h = Math.floor(ms / 3_600_000);
  const m = Math.floor((ms % 3_600_000) / 60_000);
  const secs = (ms % 60_000) / 1000;
  const s = `${Number.isInteger(secs) ? secs : secs.toString()}s`;
  if (h > 0) return `${h}h${m}m${s}`;
  if (m > 0) return `${m}m${s}`;
  return s;
}

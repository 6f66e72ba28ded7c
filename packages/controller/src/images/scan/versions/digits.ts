/**
 * Compares two runs of ASCII digits as numbers without converting them: versions come from image
 * contents an attacker may control, and `Number('99999999999999999999')` loses precision.
 */
export function compareDigits(a: string, b: string): number {
  const x = a.replace(/^0+/, '');
  const y = b.replace(/^0+/, '');
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** -1, 0 or 1 for plain strings by UTF-16 code unit (the tie-breaker the comparators fall back to). */
export function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Collapses any number to -1, 0 or 1. */
export function sign(n: number): number {
  return n < 0 ? -1 : n > 0 ? 1 : 0;
}

import { compareDigits, sign } from './digits.js';

/**
 * Debian package version order, as `dpkg --compare-versions` (lib/dpkg/version.c): epoch
 * numerically, then upstream version and Debian revision with `verrevcmp`, where `~` sorts before
 * everything, even the end of the string (`1.0~rc1 < 1.0`), and letters sort before other symbols.
 * Returns -1, 0 or 1.
 */
export function dpkgCompare(a: string, b: string): number {
  const x = parseDpkgVersion(a);
  const y = parseDpkgVersion(b);
  return sign(compareDigits(x.epoch, y.epoch) || verrevcmp(x.upstream, y.upstream) || verrevcmp(x.revision, y.revision));
}

interface DpkgVersion {
  epoch: string;
  upstream: string;
  revision: string;
}

/** `[epoch:]upstream[-revision]`; the revision is after the last `-`, and a missing one is "" (which dpkg treats as "0"). */
export function parseDpkgVersion(version: string): DpkgVersion {
  let rest = version.trim();
  let epoch = '0';
  const colon = rest.indexOf(':');
  if (colon >= 0 && /^\d+$/.test(rest.slice(0, colon))) {
    epoch = rest.slice(0, colon);
    rest = rest.slice(colon + 1);
  }
  const dash = rest.lastIndexOf('-');
  if (dash < 0) return { epoch, upstream: rest, revision: '' };
  return { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) };
}

const isDigit = (c: string | undefined) => c !== undefined && c >= '0' && c <= '9';
const isAlpha = (c: string) => (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');

/** dpkg's `order()`: digits and end 0, `~` -1, letters their code, anything else after all letters. */
function order(c: string | undefined): number {
  if (c === undefined || isDigit(c)) return 0;
  if (c === '~') return -1;
  if (isAlpha(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

/** Alternating non-digit and digit runs: non-digits by `order`, digits numerically. */
function verrevcmp(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const ac = order(a[i]);
      const bc = order(b[j]);
      if (ac !== bc) return ac - bc;
      i++;
      j++;
    }
    let di = i;
    while (isDigit(a[di])) di++;
    let dj = j;
    while (isDigit(b[dj])) dj++;
    const c = compareDigits(a.slice(i, di), b.slice(j, dj));
    if (c !== 0) return c;
    i = di;
    j = dj;
  }
  return 0;
}

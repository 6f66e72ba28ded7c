import { compareDigits, compareStrings, sign } from './digits.js';

/**
 * Python (PEP 440) version order, as the `packaging` library sorts: epoch, release (trailing zeros
 * dropped, so `1.0 == 1.0.0`), pre-release (a < b < rc), post-release, dev-release, local label.
 * A dev release of a final sorts before its pre-releases (`1.0.dev1 < 1.0a1 < 1.0 < 1.0.post1`).
 * Spellings are normalised (`1.0-alpha.1 == 1.0a1`, `1.0-1 == 1.0.post1`, `v1.0 == 1.0`).
 * Unparsable (legacy) versions sort before every valid one, then among themselves as strings.
 * Returns -1, 0 or 1.
 */
export function pep440Compare(a: string, b: string): number {
  const x = parsePep440(a);
  const y = parsePep440(b);
  if (!x || !y) {
    if (x || y) return x ? 1 : -1;
    return compareStrings(a, b);
  }
  return (
    sign(compareDigits(x.epoch, y.epoch)) ||
    compareRelease(x.release, y.release) ||
    compareOptional(preKey(x), preKey(y)) ||
    compareOptional(postKey(x), postKey(y)) ||
    compareOptional(devKey(x), devKey(y)) ||
    compareLocal(x.local, y.local)
  );
}

export interface Pep440Version {
  epoch: string;
  release: string[];
  pre?: { label: 'a' | 'b' | 'rc'; number: string };
  post?: string;
  dev?: string;
  local: string[];
}

// The regular expression from PEP 440 Appendix B, which accepts every spelling `packaging` does.
const PEP440 = new RegExp(
  '^\\s*v?(?:(\\d+)!)?(\\d+(?:\\.\\d+)*)' +
    '(?:[-_.]?(alpha|a|beta|b|preview|pre|c|rc)[-_.]?(\\d+)?)?' +
    '(?:-(\\d+)|[-_.]?(post|rev|r)[-_.]?(\\d+)?)?' +
    '(?:[-_.]?(dev)[-_.]?(\\d+)?)?' +
    '(?:\\+([a-z0-9]+(?:[-_.][a-z0-9]+)*))?\\s*$',
  'i',
);

const PRE_LABEL: Record<string, 'a' | 'b' | 'rc'> = { alpha: 'a', a: 'a', beta: 'b', b: 'b', c: 'rc', rc: 'rc', pre: 'rc', preview: 'rc' };

export function parsePep440(version: string): Pep440Version | undefined {
  const m = PEP440.exec(version);
  if (!m) return undefined;
  const v: Pep440Version = { epoch: m[1] ?? '0', release: m[2]!.split('.'), local: m[10] ? m[10].toLowerCase().split(/[-_.]/) : [] };
  if (m[3]) v.pre = { label: PRE_LABEL[m[3].toLowerCase()]!, number: m[4] ?? '0' };
  if (m[5] !== undefined) v.post = m[5];
  else if (m[6]) v.post = m[7] ?? '0';
  if (m[8]) v.dev = m[9] ?? '0';
  return v;
}

function compareRelease(a: string[], b: string[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const c = compareDigits(a[i] ?? '0', b[i] ?? '0');
    if (c !== 0) return sign(c);
  }
  return 0;
}

/** A sort key that is -Infinity, +Infinity, or a tuple of labels/numbers compared in order. */
type Key = -1 | 1 | Array<string | number>;
const BEFORE_ALL: Key = -1;
const AFTER_ALL: Key = 1;

const LABEL_ORDER = { a: 0, b: 1, rc: 2 };

function preKey(v: Pep440Version): Key {
  // `1.0.dev1` (a dev release with no pre/post) sorts before `1.0a1`; no pre-release sorts after them all.
  if (!v.pre && !v.post && v.dev !== undefined) return BEFORE_ALL;
  if (!v.pre) return AFTER_ALL;
  return [LABEL_ORDER[v.pre.label], v.pre.number];
}

function postKey(v: Pep440Version): Key {
  return v.post === undefined ? BEFORE_ALL : [v.post];
}

function devKey(v: Pep440Version): Key {
  return v.dev === undefined ? AFTER_ALL : [v.dev];
}

function compareOptional(a: Key, b: Key): number {
  if (typeof a === 'number' || typeof b === 'number') {
    const av = typeof a === 'number' ? a : 0;
    const bv = typeof b === 'number' ? b : 0;
    return sign(av - bv);
  }
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (x === undefined || y === undefined) return x === undefined ? (y === undefined ? 0 : -1) : 1;
    const c = typeof x === 'number' && typeof y === 'number' ? sign(x - y) : sign(compareDigits(String(x), String(y)));
    if (c !== 0) return c;
  }
  return 0;
}

/** No local label sorts first; numeric segments sort after alphanumeric ones, then a longer label wins. */
function compareLocal(a: string[], b: string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i]!;
    const y = b[i]!;
    const xn = /^\d+$/.test(x);
    const yn = /^\d+$/.test(y);
    const c = xn && yn ? compareDigits(x, y) : xn !== yn ? (xn ? 1 : -1) : compareStrings(x, y);
    if (c !== 0) return sign(c);
  }
  return sign(a.length - b.length);
}

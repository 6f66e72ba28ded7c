import { compareDigits, compareStrings, sign } from './digits.js';

/**
 * Alpine package version order, close to apk-tools: dot-separated numbers, an optional letter,
 * `_suffix[N]` parts (`_alpha < _beta < _pre < _rc <` none `< _cvs < _svn < _git < _hg < _p`),
 * an ignored `~hash`, then `-rN`. More numeric parts sort later (`1.0 < 1.0.0`), as in apk.
 * Not reproduced: apk's string-like comparison of later parts with leading zeros. Returns -1, 0 or 1.
 */
export function apkCompare(a: string, b: string): number {
  const x = parseApkVersion(a);
  const y = parseApkVersion(b);
  if (!x || !y) return compareStrings(a, b);
  for (let i = 0; i < Math.min(x.numbers.length, y.numbers.length); i++) {
    const c = compareDigits(x.numbers[i]!, y.numbers[i]!);
    if (c !== 0) return sign(c);
  }
  if (x.numbers.length !== y.numbers.length) return x.numbers.length < y.numbers.length ? -1 : 1;
  if (x.letter !== y.letter) return x.letter < y.letter ? -1 : 1;
  for (let i = 0; i < Math.max(x.suffixes.length, y.suffixes.length); i++) {
    const s = x.suffixes[i];
    const t = y.suffixes[i];
    // A missing suffix sits between the pre-release and the post-release ones.
    const sr = s ? s.rank : 0;
    const tr = t ? t.rank : 0;
    if (sr !== tr) return sr < tr ? -1 : 1;
    const c = compareDigits(s?.number ?? '0', t?.number ?? '0');
    if (c !== 0) return sign(c);
  }
  return sign(compareDigits(x.revision, y.revision));
}

/** Pre-release suffixes rank below 0 (no suffix), post-release ones above. */
const SUFFIX_RANK: Record<string, number> = { alpha: -4, beta: -3, pre: -2, rc: -1, cvs: 1, svn: 2, git: 3, hg: 4, p: 5 };

interface ApkVersion {
  numbers: string[];
  letter: string;
  suffixes: Array<{ rank: number; number: string }>;
  revision: string;
}

const APK_VERSION = /^(\d+(?:\.\d+)*)([a-z]?)((?:_(?:alpha|beta|pre|rc|cvs|svn|git|hg|p)\d*)*)(?:~[0-9a-f]+)?(?:-r(\d+))?$/;

/** Undefined when the string is not an apk version (the comparator then falls back to plain string order). */
export function parseApkVersion(version: string): ApkVersion | undefined {
  const m = APK_VERSION.exec(version.trim());
  if (!m) return undefined;
  const suffixes = [...(m[3] ?? '').matchAll(/_([a-z]+)(\d*)/g)].map((s) => ({ rank: SUFFIX_RANK[s[1]!]!, number: s[2] || '0' }));
  return { numbers: m[1]!.split('.'), letter: m[2] ?? '', suffixes, revision: m[4] ?? '0' };
}

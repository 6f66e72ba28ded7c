import { compareDigits, compareStrings, sign } from './digits.js';

/**
 * Semantic Versioning 2.0.0 precedence: major.minor.patch numerically, then a version with a
 * prerelease sorts before the same version without one; prerelease identifiers compare left to
 * right, numeric ones numerically and before alphanumeric ones, and a shorter list that is a prefix
 * sorts first (`1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-beta < 1.0.0`). Build metadata is ignored.
 * Tolerates a leading `v`/`=`; anything unparsable falls back to plain string order. Returns -1, 0 or 1.
 */
export function semverCompare(a: string, b: string): number {
  const x = parseSemver(a);
  const y = parseSemver(b);
  if (!x || !y) return compareStrings(a, b);
  for (let i = 0; i < 3; i++) {
    const c = compareDigits(x.release[i]!, y.release[i]!);
    if (c !== 0) return sign(c);
  }
  if (x.prerelease.length === 0 || y.prerelease.length === 0) {
    return x.prerelease.length === y.prerelease.length ? 0 : x.prerelease.length === 0 ? 1 : -1;
  }
  for (let i = 0; i < Math.min(x.prerelease.length, y.prerelease.length); i++) {
    const c = compareIdentifier(x.prerelease[i]!, y.prerelease[i]!);
    if (c !== 0) return c;
  }
  return sign(x.prerelease.length - y.prerelease.length);
}

const SEMVER = /^[v=]?\s*(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

export function parseSemver(version: string): { release: [string, string, string]; prerelease: string[] } | undefined {
  const m = SEMVER.exec(version.trim());
  if (!m) return undefined;
  return { release: [m[1]!, m[2]!, m[3]!], prerelease: m[4] ? m[4].split('.') : [] };
}

function compareIdentifier(a: string, b: string): number {
  const an = /^\d+$/.test(a);
  const bn = /^\d+$/.test(b);
  if (an && bn) return sign(compareDigits(a, b));
  if (an !== bn) return an ? -1 : 1;
  return compareStrings(a, b);
}

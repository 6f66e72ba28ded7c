import { apkCompare } from './apkCompare.js';
import { dpkgCompare } from './dpkgCompare.js';
import { pep440Compare } from './pep440Compare.js';
import { semverCompare } from './semverCompare.js';

/** Orders two versions of one ecosystem: negative, zero or positive. */
export type VersionCompare = (a: string, b: string) => number;

/**
 * The version order for an OSV ecosystem name (`Debian:12`, `Alpine:v3.20`, `PyPI`, ...), by the
 * part before the first `:`; undefined for ecosystems this scanner does not understand, whose
 * ECOSYSTEM ranges are then not evaluated (exact `versions[]` still are).
 */
export function compareForEcosystem(ecosystem: string): VersionCompare | undefined {
  switch (ecosystem.split(':')[0]) {
    case 'Debian':
    case 'Ubuntu':
      return dpkgCompare;
    case 'Alpine':
      return apkCompare;
    case 'PyPI':
      return pep440Compare;
    case 'npm':
      return semverCompare;
    default:
      return undefined;
  }
}

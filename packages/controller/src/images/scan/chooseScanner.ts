import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { SbomScanner } from './SbomScanner.js';
import type { Scanner } from './Scanner.js';
import { TrivyScanner } from './TrivyScanner.js';

export interface ChooseScannerOptions {
  /** OSV advisories for the built-in scanner. */
  advisoryPath?: string;
  /** The trivy binary to use instead of looking for `trivy` on PATH (tests, unusual installs). */
  trivyPath?: string;
}

/**
 * Trivy when it is installed (it covers more ecosystems and maintains its own database),
 * otherwise the built-in SBOM scanner with the operator's advisory file, if any.
 */
export function chooseScanner(opts: ChooseScannerOptions = {}): Scanner {
  const trivy = opts.trivyPath !== undefined ? (isExecutableFile(opts.trivyPath) ? opts.trivyPath : undefined) : findOnPath('trivy');
  if (trivy) return new TrivyScanner({ trivyPath: trivy });
  return new SbomScanner(opts.advisoryPath ? { advisoryPath: opts.advisoryPath } : {});
}

/** The first executable `name` in $PATH, like `command -v`. */
export function findOnPath(name: string, path: string = process.env.PATH ?? ''): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, name);
    if (isExecutableFile(candidate)) return candidate;
  }
  return undefined;
}

function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

import { Ext4RootfsReader } from './Ext4RootfsReader.js';
import { OsvAdvisories } from './OsvAdvisories.js';
import type { RootfsReader } from './RootfsReader.js';
import { collectSbom, type InstalledPackage } from './Sbom.js';
import {
  countBySeverity,
  type ScannedImage,
  type Scanner,
  type ScanResult,
  type ScanVulnerability,
  sortVulnerabilities,
} from './Scanner.js';

export interface SbomScannerOptions {
  /** OSV advisories to match against (see `OsvAdvisories.load`); without one, only packages are counted. */
  advisoryPath?: string;
  /** Already-loaded advisories (takes precedence over `advisoryPath`). */
  advisories?: OsvAdvisories;
  /** How to read an image's files; debugfs on the ext4 file by default. */
  readerFor?: (image: ScannedImage) => RootfsReader;
}

export const NO_ADVISORIES_NOTE = 'no advisory database configured: packages counted, vulnerabilities not checked';

/**
 * The built-in scanner: lists installed packages straight out of the image (no mount, no network)
 * and matches them against an operator-supplied OSV advisory set. The advisory file is loaded on
 * first use and kept; a new scanner picks up a changed file. A file that fails to load fails the
 * scan — a broken database must never look like a clean image.
 */
export class SbomScanner implements Scanner {
  readonly name = 'scaibunker-sbom';
  private readonly advisoryPath: string | undefined;
  private readonly readerFor: (image: ScannedImage) => RootfsReader;
  private advisories: Promise<OsvAdvisories> | undefined;

  constructor(opts: SbomScannerOptions = {}) {
    this.advisoryPath = opts.advisoryPath;
    this.readerFor = opts.readerFor ?? ((image) => new Ext4RootfsReader(image.ext4Path));
    if (opts.advisories) this.advisories = Promise.resolve(opts.advisories);
  }

  async scan(image: ScannedImage, signal?: AbortSignal): Promise<ScanResult> {
    signal?.throwIfAborted();
    const advisories = await this.loadAdvisories();
    const sbom = await collectSbom(this.readerFor(image), signal);
    const notes = [...sbom.notes];
    const vulnerabilities: ScanVulnerability[] = [];
    if (advisories) {
      for (const pkg of sbom.packages) vulnerabilities.push(...matchPackage(advisories, pkg));
    } else {
      notes.unshift(NO_ADVISORIES_NOTE);
    }
    sortVulnerabilities(vulnerabilities);
    return {
      scanner: this.name,
      scanned_at: new Date().toISOString(),
      packages: sbom.packages.length,
      vulnerabilities,
      counts: countBySeverity(vulnerabilities),
      ...(notes.length > 0 ? { note: notes.join('; ') } : {}),
    };
  }

  private loadAdvisories(): Promise<OsvAdvisories> | undefined {
    if (!this.advisories && this.advisoryPath) {
      const loading = OsvAdvisories.load(this.advisoryPath);
      // Forget a failed load so the next scan retries (the operator may have fixed the file).
      loading.catch(() => {
        if (this.advisories === loading) this.advisories = undefined;
      });
      this.advisories = loading;
    }
    return this.advisories;
  }
}

/**
 * Advisories for one installed package. Distribution advisories are keyed by source package
 * (Debian `Source:`, Alpine origin) and its version, so that is what is looked up; the report
 * still names the installed binary package and version.
 */
function matchPackage(advisories: OsvAdvisories, pkg: InstalledPackage): ScanVulnerability[] {
  const query = pkg.source
    ? { ecosystem: pkg.ecosystem, name: pkg.source.name, version: pkg.source.version }
    : { ecosystem: pkg.ecosystem, name: pkg.name, version: pkg.version };
  return advisories.match(query).map((m) => ({
    id: m.id,
    ...(m.aliases ? { aliases: m.aliases } : {}),
    package: pkg.name,
    ecosystem: pkg.ecosystem,
    installed: pkg.version,
    ...(m.fixed ? { fixed: m.fixed } : {}),
    ...(m.severity ? { severity: m.severity } : {}),
    ...(m.summary ? { summary: m.summary } : {}),
  }));
}

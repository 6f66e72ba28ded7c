import { SEVERITY_ORDER, type SeverityBand } from './Severity.js';

/** A baked image: the ext4 file and the content hash it is named by. */
export interface ScannedImage {
  ext4Path: string;
  sha256: string;
}

/** Finds known vulnerabilities in the packages installed in an image. */
export interface Scanner {
  readonly name: string;
  scan(image: ScannedImage, signal?: AbortSignal): Promise<ScanResult>;
}

export interface ScanVulnerability {
  /** Advisory id (CVE, GHSA, DSA, ...). */
  id: string;
  aliases?: string[];
  package: string;
  /** OSV ecosystem of the package (`Debian:12`, `PyPI`, ...). */
  ecosystem: string;
  installed: string;
  fixed?: string;
  /** critical, high, medium or low; absent when the advisory gives none. */
  severity?: string;
  summary?: string;
}

export interface SeverityCounts {
  critical: number;
  high: number;
  medium: number;
  low: number;
  unknown: number;
}

export interface ScanResult {
  scanner: string;
  /** ISO 8601. */
  scanned_at: string;
  /** Installed packages found (whether vulnerable or not). */
  packages: number;
  vulnerabilities: ScanVulnerability[];
  counts: SeverityCounts;
  /** Why the result may be less than it looks (no advisory database, listings truncated, ...). */
  note?: string;
}

/** Vulnerabilities per severity; anything without a recognised band counts as unknown. */
export function countBySeverity(vulnerabilities: ScanVulnerability[]): SeverityCounts {
  const counts: SeverityCounts = { critical: 0, high: 0, medium: 0, low: 0, unknown: 0 };
  for (const v of vulnerabilities) counts[bandOf(v)]++;
  return counts;
}

/** Most severe first, then by id, package and ecosystem, so results are stable across runs and scanners. */
export function sortVulnerabilities(vulnerabilities: ScanVulnerability[]): ScanVulnerability[] {
  const key = (v: ScanVulnerability) => SEVERITY_ORDER.indexOf(bandOf(v));
  return vulnerabilities.sort(
    (a, b) =>
      key(a) - key(b) || cmp(a.id, b.id) || cmp(a.package, b.package) || cmp(a.ecosystem, b.ecosystem) || cmp(a.installed, b.installed),
  );
}

function bandOf(v: ScanVulnerability): SeverityBand | 'unknown' {
  return v.severity === 'critical' || v.severity === 'high' || v.severity === 'medium' || v.severity === 'low' ? v.severity : 'unknown';
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

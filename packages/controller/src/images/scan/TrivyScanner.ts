import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { extractExt4 } from './extractExt4.js';
import { runBounded } from './runBounded.js';
import {
  countBySeverity,
  type ScannedImage,
  type Scanner,
  type ScanResult,
  type ScanVulnerability,
  sortVulnerabilities,
} from './Scanner.js';
import { normaliseSeverity } from './Severity.js';

export interface TrivyScannerOptions {
  /** The trivy binary. */
  trivyPath: string;
  debugfsPath?: string;
  /** Where to unpack images (needs room for a whole image); the system temp dir by default. */
  workDir?: string;
  /** For extraction and for trivy, each. */
  timeoutMs?: number;
  /** Pass `--skip-db-update` (air-gapped hosts that refresh trivy's database out of band). */
  skipDbUpdate?: boolean;
}

/** Trivy's JSON report is large (descriptions, references); anything beyond this is not a report we want. */
const MAX_REPORT_BYTES = 256 * 1024 * 1024;

/**
 * Aqua Trivy, when the operator has installed it: it knows far more ecosystems and has its own
 * maintained database. The image is unpacked without mounting (see `extractExt4`) into a temp
 * directory that is removed afterwards, and `trivy rootfs` scans that directory.
 */
export class TrivyScanner implements Scanner {
  readonly name = 'trivy';

  constructor(private readonly opts: TrivyScannerOptions) {}

  async scan(image: ScannedImage, signal?: AbortSignal): Promise<ScanResult> {
    signal?.throwIfAborted();
    const timeoutMs = this.opts.timeoutMs ?? 10 * 60_000;
    const work = await mkdtemp(join(this.opts.workDir ?? tmpdir(), 'scaibunker-trivy-'));
    try {
      const rootfs = join(work, 'rootfs');
      await mkdir(rootfs);
      await extractExt4(image.ext4Path, rootfs, {
        signal,
        timeoutMs,
        debugfsPath: this.opts.debugfsPath,
      });
      const args = ['rootfs', '--format', 'json', '--quiet', '--scanners', 'vuln', '--list-all-pkgs'];
      if (this.opts.skipDbUpdate) args.push('--skip-db-update');
      args.push(rootfs);
      const out = await runBounded(this.opts.trivyPath, args, { maxStdoutBytes: MAX_REPORT_BYTES, signal, timeoutMs });
      if (out.overflowed) throw new Error(`trivy report larger than ${MAX_REPORT_BYTES} bytes`);
      if (out.code !== 0) throw new Error(`trivy exited with ${out.code}: ${out.stderr.trim().slice(-1000)}`);
      let report: unknown;
      try {
        report = JSON.parse(out.stdout.toString('utf8'));
      } catch {
        throw new Error(`trivy printed something other than JSON: ${out.stdout.toString('utf8', 0, 200)}`);
      }
      return mapTrivyReport(report);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }
}

interface TrivyVulnerability {
  VulnerabilityID?: unknown;
  VendorIDs?: unknown;
  PkgName?: unknown;
  InstalledVersion?: unknown;
  FixedVersion?: unknown;
  Severity?: unknown;
  Title?: unknown;
  Description?: unknown;
}
interface TrivyResult {
  Target?: unknown;
  Class?: unknown;
  Type?: unknown;
  Packages?: unknown;
  Vulnerabilities?: unknown;
}

/**
 * Trivy's JSON report (schema version 2: `{ Metadata: { OS }, Results: [{ Type, Packages[],
 * Vulnerabilities[] }] }`; the pre-0.20 bare array of results is accepted too) as a ScanResult.
 * The package count comes from `Packages[]` (present with `--list-all-pkgs`); without them only
 * vulnerable packages can be counted, and the note says so.
 */
export function mapTrivyReport(report: unknown, scannedAt: Date = new Date()): ScanResult {
  const root = isObject(report) ? report : {};
  const results = (Array.isArray(report) ? report : Array.isArray(root.Results) ? root.Results : []).filter(isObject) as TrivyResult[];
  const os = isObject(root.Metadata) && isObject(root.Metadata.OS) ? root.Metadata.OS : {};
  const seen = new Set<string>();
  const vulnerabilities: ScanVulnerability[] = [];
  let packages = 0;
  let listedPackages = false;
  const vulnerablePackages = new Set<string>();
  for (const result of results) {
    const ecosystem = ecosystemOf(String(result.Type ?? ''), typeof os.Name === 'string' ? os.Name : undefined);
    if (Array.isArray(result.Packages)) {
      listedPackages = true;
      packages += result.Packages.length;
    }
    for (const raw of Array.isArray(result.Vulnerabilities) ? result.Vulnerabilities : []) {
      if (!isObject(raw)) continue;
      const v = raw as TrivyVulnerability;
      if (typeof v.VulnerabilityID !== 'string' || typeof v.PkgName !== 'string') continue;
      const installed = typeof v.InstalledVersion === 'string' ? v.InstalledVersion : '';
      // The same finding can come from two targets (e.g. a library in two site-packages); report it once.
      const key = [v.VulnerabilityID, v.PkgName, installed, ecosystem].join('\0');
      vulnerablePackages.add([v.PkgName, installed, ecosystem].join('\0'));
      if (seen.has(key)) continue;
      seen.add(key);
      const vuln: ScanVulnerability = { id: v.VulnerabilityID, package: v.PkgName, ecosystem, installed };
      const aliases = Array.isArray(v.VendorIDs) ? v.VendorIDs.filter((a): a is string => typeof a === 'string') : [];
      if (aliases.length > 0) vuln.aliases = aliases;
      if (typeof v.FixedVersion === 'string' && v.FixedVersion.trim()) vuln.fixed = v.FixedVersion.trim();
      const severity = normaliseSeverity(v.Severity);
      if (severity) vuln.severity = severity;
      const summary =
        typeof v.Title === 'string' && v.Title.trim()
          ? v.Title.trim()
          : typeof v.Description === 'string'
            ? v.Description.trim().split('\n')[0]
            : '';
      if (summary) vuln.summary = summary.length > 200 ? `${summary.slice(0, 199)}…` : summary;
      vulnerabilities.push(vuln);
    }
  }
  sortVulnerabilities(vulnerabilities);
  return {
    scanner: 'trivy',
    scanned_at: scannedAt.toISOString(),
    packages: listedPackages ? packages : vulnerablePackages.size,
    vulnerabilities,
    counts: countBySeverity(vulnerabilities),
    ...(listedPackages
      ? {}
      : { note: 'trivy listed no packages (run without --list-all-pkgs?): package count covers vulnerable packages only' }),
  };
}

/** Trivy's result Type as an OSV ecosystem name, so both scanners report packages alike. */
function ecosystemOf(type: string, osName: string | undefined): string {
  const major = osName && /^(\d+)/.exec(osName)?.[1];
  const majorMinor = osName && /^(\d+\.\d+)/.exec(osName)?.[1];
  switch (type) {
    case 'debian':
      return major ? `Debian:${major}` : 'Debian';
    case 'ubuntu':
      return majorMinor ? `Ubuntu:${majorMinor}` : 'Ubuntu';
    case 'alpine':
      return majorMinor ? `Alpine:v${majorMinor}` : 'Alpine';
    case 'python-pkg':
    case 'pip':
    case 'pipenv':
    case 'poetry':
    case 'uv':
      return 'PyPI';
    case 'node-pkg':
    case 'npm':
    case 'yarn':
    case 'pnpm':
      return 'npm';
    default:
      return type;
  }
}

function isObject(value: unknown): value is Record<string, any> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

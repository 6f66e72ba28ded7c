import type { RootfsEntry, RootfsReader } from './RootfsReader.js';

/** One installed package, named and versioned the way OSV advisories name and version it. */
export interface InstalledPackage {
  /** OSV ecosystem: `Debian:12`, `Ubuntu:24.04`, `Alpine:v3.20`, `PyPI`, `npm` (or `Debian`/`Alpine` when the release is unknown). */
  ecosystem: string;
  /** The installed (binary) package name. */
  name: string;
  version: string;
  /**
   * The name and version advisories are keyed by, when that differs from the binary package:
   * Debian/Ubuntu source packages (dpkg `Source:`), Alpine origins (apk `o:`).
   */
  source?: { name: string; version: string };
  /** Where it was found in the image, for reports. */
  location: string;
}

export interface Sbom {
  os?: { id: string; versionId?: string };
  packages: InstalledPackage[];
  /** Things that made the list incomplete (listings truncated, the file budget spent). */
  notes: string[];
}

export interface SbomLimits {
  /** Package metadata files read at most (Python/npm), so a million-package image cannot make the scan endless. */
  maxPackageFiles: number;
  /** Reads in flight at once (each is a debugfs process with the ext4 reader). */
  concurrency: number;
}

const DEFAULT_SBOM_LIMITS: SbomLimits = { maxPackageFiles: 20_000, concurrency: 8 };

const DPKG_STATUS = '/var/lib/dpkg/status';
const APK_INSTALLED = '/lib/apk/db/installed';
const PYTHON_ROOTS = ['/usr/lib', '/usr/local/lib'];
const NODE_ROOTS = ['/usr/lib/node_modules', '/usr/local/lib/node_modules'];

/** Names and versions from metadata are capped: they end up in reports and database rows. */
const MAX_FIELD = 256;

/**
 * The packages installed in an image: Debian/Ubuntu (dpkg), Alpine (apk), system-wide Python
 * distributions and global npm packages. Each source is read independently: a missing or
 * malformed one contributes nothing rather than failing the whole collection.
 */
export async function collectSbom(reader: RootfsReader, signal?: AbortSignal, limits: Partial<SbomLimits> = {}): Promise<Sbom> {
  const collector = new SbomCollector(reader, { ...DEFAULT_SBOM_LIMITS, ...limits }, signal);
  return collector.collect();
}

class SbomCollector {
  private readonly notes: string[] = [];
  private filesLeft: number;

  constructor(
    private readonly reader: RootfsReader,
    private readonly limits: SbomLimits,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.filesLeft = limits.maxPackageFiles;
  }

  async collect(): Promise<Sbom> {
    const os = await this.osRelease();
    const packages = [...(await this.dpkg(os)), ...(await this.apk(os)), ...(await this.python()), ...(await this.npm())];
    // The same distribution can be reachable twice (e.g. a symlinked site-packages); keep one.
    const seen = new Set<string>();
    const unique = packages.filter((p) => {
      const key = `${p.ecosystem}\0${p.name}\0${p.version}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    });
    return { ...(os ? { os } : {}), packages: unique, notes: this.notes };
  }

  private async osRelease(): Promise<Sbom['os']> {
    const text =
      (await this.reader.readFile('/etc/os-release', this.signal)) ?? (await this.reader.readFile('/usr/lib/os-release', this.signal));
    if (!text) return undefined;
    const fields = parseOsRelease(text.toString('utf8'));
    if (!fields.ID) return undefined;
    return { id: fields.ID, ...(fields.VERSION_ID ? { versionId: fields.VERSION_ID } : {}) };
  }

  private async dpkg(os: Sbom['os']): Promise<InstalledPackage[]> {
    const status = await this.reader.readFile(DPKG_STATUS, this.signal);
    if (!status) return [];
    const ecosystem = dpkgEcosystem(os);
    return parseDpkgStatus(status.toString('utf8')).map((p) => ({ ecosystem, ...p, location: DPKG_STATUS }));
  }

  private async apk(os: Sbom['os']): Promise<InstalledPackage[]> {
    const db = await this.reader.readFile(APK_INSTALLED, this.signal);
    if (!db) return [];
    const ecosystem = alpineEcosystem(os);
    return parseApkInstalled(db.toString('utf8')).map((p) => ({ ecosystem, ...p, location: APK_INSTALLED }));
  }

  /** `{/usr,/usr/local}/lib/python3*\/{site,dist}-packages/*.{dist,egg}-info`. */
  private async python(): Promise<InstalledPackage[]> {
    const metadataFiles: string[] = [];
    for (const root of PYTHON_ROOTS) {
      for (const py of await this.listDirs(root, (n) => /^python3(\.\d+)?$/.test(n))) {
        for (const pkgDir of ['site-packages', 'dist-packages']) {
          const dir = `${root}/${py}/${pkgDir}`;
          const listing = await this.listing(dir);
          for (const e of listing) {
            if (e.name.endsWith('.dist-info') && e.type !== 'file') metadataFiles.push(`${dir}/${e.name}/METADATA`);
            else if (e.name.endsWith('.egg-info')) metadataFiles.push(e.type === 'file' ? `${dir}/${e.name}` : `${dir}/${e.name}/PKG-INFO`);
          }
        }
      }
    }
    const found = await this.readEach(metadataFiles, (path, text) => {
      const headers = parseMetadataHeaders(text);
      const name = headers.name;
      const version = headers.version;
      if (!isPlainField(name) || !isPlainField(version)) return undefined;
      return { ecosystem: 'PyPI', name: normalizePypiName(name), version, location: path };
    });
    return found;
  }

  /** `{/usr,/usr/local}/lib/node_modules/{name,@scope/name}/package.json`, and one level of nested node_modules. */
  private async npm(): Promise<InstalledPackage[]> {
    const manifests: string[] = [];
    for (const root of NODE_ROOTS) {
      for (const pkgDir of await this.packageDirs(root)) {
        manifests.push(`${pkgDir}/package.json`);
        for (const nested of await this.packageDirs(`${pkgDir}/node_modules`)) manifests.push(`${nested}/package.json`);
      }
    }
    return this.readEach(manifests, (path, text) => {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        return undefined;
      }
      const { name, version } = (json ?? {}) as { name?: unknown; version?: unknown };
      if (typeof name !== 'string' || typeof version !== 'string' || !isPlainField(name) || !isPlainField(version)) return undefined;
      return { ecosystem: 'npm', name, version, location: path };
    });
  }

  /** Package directories in a node_modules directory: `name` and `@scope/name`, skipping `.bin` and friends. */
  private async packageDirs(nodeModules: string): Promise<string[]> {
    const dirs: string[] = [];
    for (const name of await this.listDirs(nodeModules, (n) => !n.startsWith('.'))) {
      if (!name.startsWith('@')) {
        dirs.push(`${nodeModules}/${name}`);
        continue;
      }
      for (const scoped of await this.listDirs(`${nodeModules}/${name}`, (n) => !n.startsWith('.')))
        dirs.push(`${nodeModules}/${name}/${scoped}`);
    }
    return dirs;
  }

  /** Entries of `dir` that are directories or symlinks (followed on use) and whose names pass `filter`. */
  private async listDirs(dir: string, filter: (name: string) => boolean): Promise<string[]> {
    return (await this.listing(dir)).filter((e) => (e.type === 'dir' || e.type === 'symlink') && filter(e.name)).map((e) => e.name);
  }

  private async listing(dir: string): Promise<RootfsEntry[]> {
    const listed = await this.reader.list(dir, this.signal);
    if (!listed) return [];
    if (listed.truncated) this.notes.push(`listing of ${dir} truncated at ${listed.entries.length} entries`);
    return listed.entries;
  }

  /** Reads and parses files a few at a time, within the file budget; unreadable or unparsable files are skipped. */
  private async readEach(
    paths: string[],
    parse: (path: string, text: string) => InstalledPackage | undefined,
  ): Promise<InstalledPackage[]> {
    let todo = paths;
    if (todo.length > this.filesLeft) {
      this.notes.push(`package metadata budget exhausted: ${todo.length - this.filesLeft} files not read`);
      todo = todo.slice(0, this.filesLeft);
    }
    this.filesLeft -= todo.length;
    const results: Array<InstalledPackage | undefined> = new Array(todo.length);
    let next = 0;
    const worker = async () => {
      while (next < todo.length) {
        const i = next++;
        const path = todo[i]!;
        const data = await this.reader.readFile(path, this.signal);
        results[i] = data ? parse(path, data.toString('utf8')) : undefined;
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.limits.concurrency, todo.length) }, worker));
    return results.filter((p): p is InstalledPackage => p !== undefined);
  }
}

/** `KEY=value` / `KEY="value"` lines of os-release(5). */
export function parseOsRelease(text: string): Record<string, string> {
  const fields = emptyRecord();
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (!m) continue;
    let value = m[2]!.trim();
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1).replace(/\\(.)/g, '$1');
    fields[m[1]!] = value;
  }
  return fields;
}

/** `Debian:12` / `Ubuntu:24.04` from os-release; plain `Debian` when the release is unknown (e.g. testing/sid). */
export function dpkgEcosystem(os: Sbom['os']): string {
  if (os?.id === 'ubuntu' && os.versionId && /^\d+\.\d+$/.test(os.versionId)) return `Ubuntu:${os.versionId}`;
  if (os?.id === 'debian' && os.versionId && /^\d+/.test(os.versionId)) return `Debian:${/^\d+/.exec(os.versionId)![0]}`;
  return os?.id === 'ubuntu' ? 'Ubuntu' : 'Debian';
}

/** `Alpine:v3.20` (major.minor of VERSION_ID); plain `Alpine` when unknown (e.g. edge). */
export function alpineEcosystem(os: Sbom['os']): string {
  const m = os?.id === 'alpine' && os.versionId ? /^(\d+\.\d+)/.exec(os.versionId) : null;
  return m ? `Alpine:v${m[1]}` : 'Alpine';
}

/**
 * Paragraphs of dpkg's status database. Only packages whose files are on disk count: the status
 * state `installed` (or one waiting on triggers), not `config-files`/`not-installed` leftovers.
 * `Source: name (version)` gives the source version when it differs from the binary's.
 */
export function parseDpkgStatus(text: string): Array<Omit<InstalledPackage, 'ecosystem' | 'location'>> {
  const packages: Array<Omit<InstalledPackage, 'ecosystem' | 'location'>> = [];
  for (const para of parseParagraphs(text, ': ')) {
    const state = (para.Status ?? '').split(/\s+/)[2];
    if (state !== 'installed' && state !== 'triggers-pending' && state !== 'triggers-awaited') continue;
    const name = para.Package;
    const version = para.Version;
    if (!isPlainField(name) || !isPlainField(version)) continue;
    const pkg: Omit<InstalledPackage, 'ecosystem' | 'location'> = { name, version };
    const source = /^(\S+)(?:\s+\((\S+)\))?$/.exec(para.Source ?? '');
    if (source && isPlainField(source[1]) && (source[2] === undefined || isPlainField(source[2]))) {
      pkg.source = { name: source[1]!, version: source[2] ?? version };
    }
    packages.push(pkg);
  }
  return packages;
}

/** apk's installed database: blank-line separated records of `X:value` lines (P name, V version, o origin). */
export function parseApkInstalled(text: string): Array<Omit<InstalledPackage, 'ecosystem' | 'location'>> {
  const packages: Array<Omit<InstalledPackage, 'ecosystem' | 'location'>> = [];
  for (const para of parseParagraphs(text, ':')) {
    const name = para.P;
    const version = para.V;
    if (!isPlainField(name) || !isPlainField(version)) continue;
    const origin = para.o;
    packages.push({ name, version, ...(isPlainField(origin) && origin !== name ? { source: { name: origin, version } } : {}) });
  }
  return packages;
}

/** The RFC 822-style header block of a Python METADATA / PKG-INFO file (up to the first blank line), keys lower-cased. */
export function parseMetadataHeaders(text: string): Record<string, string> {
  const headers = emptyRecord();
  for (const line of text.split('\n')) {
    if (line.trim() === '') break;
    const m = /^([A-Za-z0-9-]+):\s*(.*?)\s*$/.exec(line);
    if (m && !(m[1]!.toLowerCase() in headers)) headers[m[1]!.toLowerCase()] = m[2]!;
  }
  return headers;
}

/** PEP 503: case and runs of `-_.` do not matter (`Foo_Bar` is `foo-bar`), and OSV PyPI names are compared this way. */
export function normalizePypiName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

/** Paragraphs separated by blank lines; `Key<sep>value` fields, continuation lines (leading space) ignored. */
function parseParagraphs(text: string, separator: string): Array<Record<string, string>> {
  const paragraphs: Array<Record<string, string>> = [];
  let current = emptyRecord();
  for (const line of text.split('\n')) {
    if (line.trim() === '') {
      if (Object.keys(current).length > 0) paragraphs.push(current);
      current = emptyRecord();
      continue;
    }
    if (line.startsWith(' ') || line.startsWith('\t')) continue;
    const at = line.indexOf(separator);
    if (at <= 0) continue;
    const key = line.slice(0, at);
    if (!(key in current)) current[key] = line.slice(at + separator.length).trim();
  }
  if (Object.keys(current).length > 0) paragraphs.push(current);
  return paragraphs;
}

/** Keys come from the image: no prototype, so `__proto__` or `constructor` are ordinary keys. */
function emptyRecord(): Record<string, string> {
  return Object.create(null) as Record<string, string>;
}

function isPlainField(value: string | undefined): value is string {
  return value !== undefined && value.length > 0 && value.length <= MAX_FIELD && !/[\s\0]/.test(value);
}

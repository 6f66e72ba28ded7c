import { createReadStream } from 'node:fs';
import { open, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { cvss3BaseScore } from './Cvss3.js';
import { normalizePypiName } from './Sbom.js';
import { normaliseSeverity, type SeverityBand, severityFromScore } from './Severity.js';
import { compareForEcosystem, type VersionCompare } from './versions/compareForEcosystem.js';
import { semverCompare } from './versions/semverCompare.js';

/** A package as advisories know it: the name/version to look up (Debian: the source package). */
export interface AdvisoryQuery {
  ecosystem: string;
  name: string;
  version: string;
}

/** One advisory that applies to one package version. */
export interface AdvisoryMatch {
  id: string;
  aliases?: string[];
  /** The first version that fixes it, after the installed one, when the advisory says. */
  fixed?: string;
  severity?: SeverityBand;
  summary?: string;
}

// The parts of the OSV schema (https://ossf.github.io/osv-schema/) this matcher reads.
interface OsvRecord {
  id: string;
  aliases?: unknown;
  summary?: unknown;
  details?: unknown;
  withdrawn?: unknown;
  severity?: unknown;
  database_specific?: unknown;
  affected?: unknown;
}
interface OsvAffected {
  package?: { ecosystem?: unknown; name?: unknown };
  versions?: unknown;
  ranges?: unknown;
  severity?: unknown;
  ecosystem_specific?: unknown;
  database_specific?: unknown;
}
type OsvEvent = { introduced: string } | { fixed: string } | { last_affected: string } | { limit: string };

/**
 * An operator-supplied set of OSV advisories (e.g. an export of osv.dev's Debian, Alpine, PyPI and
 * npm data), indexed by ecosystem and package for matching installed packages against.
 * Withdrawn records and records without an id are skipped.
 */
export class OsvAdvisories {
  /** affected[] entries by `<ecosystem before ':'>\0<package name>`, each with the record it belongs to. */
  private readonly index = new Map<string, Array<{ record: OsvRecord; affected: OsvAffected }>>();
  private records = 0;

  /**
   * Loads `path`: a directory of `*.json` files (each one record or an array), a JSON array of
   * records, a single record, or NDJSON (one record per line, streamed, so a large export does not
   * have to fit in one string).
   */
  static async load(path: string): Promise<OsvAdvisories> {
    const advisories = new OsvAdvisories();
    if ((await stat(path)).isDirectory()) {
      const names = (await readdir(path)).filter((n) => n.endsWith('.json')).sort();
      for (const name of names) advisories.add(parseJsonFile(await readFile(join(path, name), 'utf8'), join(path, name)));
      return advisories;
    }
    if ((await firstNonBlankChar(path)) === '[') {
      advisories.add(parseJsonFile(await readFile(path, 'utf8'), path));
      return advisories;
    }
    const ndjson = await readNdjson(path);
    // One pretty-printed record is not NDJSON; read it whole.
    advisories.add(ndjson ?? parseJsonFile(await readFile(path, 'utf8'), path));
    return advisories;
  }

  static fromRecords(records: unknown[]): OsvAdvisories {
    const advisories = new OsvAdvisories();
    advisories.add(records);
    return advisories;
  }

  /** Records indexed (withdrawn and malformed ones are not counted). */
  get size(): number {
    return this.records;
  }

  /** Advisories that affect `pkg` at its version, one per id, sorted by id. */
  match(pkg: AdvisoryQuery): AdvisoryMatch[] {
    const matches = new Map<string, AdvisoryMatch>();
    for (const { record, affected } of this.index.get(indexKey(pkg.ecosystem, pkg.name)) ?? []) {
      const ecosystem = String(affected.package?.ecosystem);
      if (!ecosystemMatches(ecosystem, pkg.ecosystem)) continue;
      const hit = affects(affected, pkg.version, compareForEcosystem(ecosystem));
      if (!hit) continue;
      const existing = matches.get(record.id);
      if (existing) {
        // Two affected[] entries for one package: keep the lowest fix that applies.
        const compare = compareForEcosystem(ecosystem);
        if (hit.fixed && compare && (!existing.fixed || compare(hit.fixed, existing.fixed) < 0)) existing.fixed = hit.fixed;
        continue;
      }
      const match: AdvisoryMatch = { id: record.id };
      const aliases = Array.isArray(record.aliases) ? record.aliases.filter((a): a is string => typeof a === 'string') : [];
      if (aliases.length > 0) match.aliases = aliases;
      if (hit.fixed) match.fixed = hit.fixed;
      const severity = severityOf(record, affected);
      if (severity) match.severity = severity;
      const summary = summaryOf(record);
      if (summary) match.summary = summary;
      matches.set(record.id, match);
    }
    return [...matches.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  private add(records: unknown[]): void {
    for (const value of records) {
      if (!isObject(value) || typeof value.id !== 'string' || value.id === '') continue;
      const record = value as unknown as OsvRecord;
      if (record.withdrawn !== undefined && record.withdrawn !== null) continue;
      if (!Array.isArray(record.affected)) continue;
      let indexed = false;
      for (const affected of record.affected as unknown[]) {
        if (!isObject(affected) || !isObject(affected.package)) continue;
        const { ecosystem, name } = affected.package;
        if (typeof ecosystem !== 'string' || typeof name !== 'string') continue;
        const key = indexKey(ecosystem, name);
        const list = this.index.get(key) ?? [];
        if (list.length === 0) this.index.set(key, list);
        list.push({ record, affected: affected as OsvAffected });
        indexed = true;
      }
      if (indexed) this.records++;
    }
  }
}

function indexKey(ecosystem: string, name: string): string {
  const base = ecosystem.split(':')[0]!;
  return `${base}\0${base === 'PyPI' ? normalizePypiName(name) : name}`;
}

/**
 * An advisory for `Debian:12` applies to `Debian:12` packages; one for plain `Debian` (no release)
 * to every Debian release. Ubuntu advisories carry a further suffix (`Ubuntu:24.04:LTS`), which
 * still applies to `Ubuntu:24.04`.
 */
export function ecosystemMatches(advisoryEcosystem: string, packageEcosystem: string): boolean {
  if (advisoryEcosystem === packageEcosystem) return true;
  if (!advisoryEcosystem.includes(':')) return advisoryEcosystem === packageEcosystem.split(':')[0];
  return packageEcosystem.includes(':') && advisoryEcosystem.startsWith(`${packageEcosystem}:`);
}

/**
 * Whether one affected[] entry covers `version`: listed in `versions[]`, or inside one of the
 * ECOSYSTEM/SEMVER `ranges[]` (GIT ranges need commit history and are skipped). With it, the
 * first fixed version above `version`, when there is one.
 */
export function affects(affected: OsvAffected, version: string, compare: VersionCompare | undefined): { fixed?: string } | undefined {
  const ranges = (Array.isArray(affected.ranges) ? affected.ranges : []).filter(isObject);
  let listed = false;
  if (Array.isArray(affected.versions)) {
    listed = affected.versions.some(
      (v) => typeof v === 'string' && (v === version || (compare !== undefined && compare(v, version) === 0)),
    );
  }
  let inRange = false;
  // The fix reported is that of a range that matched; for a match by versions[] alone, the lowest fix above it.
  let fixedInRange: string | undefined;
  let fixedAny: string | undefined;
  const lower = (a: string | undefined, b: string, c: VersionCompare) => (a === undefined || c(b, a) < 0 ? b : a);
  for (const range of ranges) {
    const rangeCompare = range.type === 'SEMVER' ? semverCompare : range.type === 'ECOSYSTEM' ? compare : undefined;
    if (!rangeCompare) continue;
    const result = evaluateRange(parseEvents(range.events), version, rangeCompare);
    if (result.affected) inRange = true;
    if (result.fixed === undefined) continue;
    fixedAny = lower(fixedAny, result.fixed, rangeCompare);
    if (result.affected) fixedInRange = lower(fixedInRange, result.fixed, rangeCompare);
  }
  if (!listed && !inRange) return undefined;
  const fixed = inRange ? fixedInRange : fixedAny;
  return fixed ? { fixed } : {};
}

/**
 * OSV's evaluation: events sorted by version (`introduced: "0"` first); walking them, an
 * `introduced` at or below the version turns "affected" on, a `fixed` at or below it turns it off,
 * a `last_affected` below it turns it off. A `limit` at or below the version excludes it.
 */
export function evaluateRange(events: OsvEvent[], version: string, compare: VersionCompare): { affected: boolean; fixed?: string } {
  const versionOf = (e: OsvEvent) => Object.values(e)[0] as string;
  const sorted = [...events].sort((a, b) => {
    const az = 'introduced' in a && a.introduced === '0';
    const bz = 'introduced' in b && b.introduced === '0';
    if (az || bz) return az === bz ? 0 : az ? -1 : 1;
    return compare(versionOf(a), versionOf(b));
  });
  let affected = false;
  for (const e of sorted) {
    if ('introduced' in e) {
      if (e.introduced === '0' || compare(version, e.introduced) >= 0) affected = true;
    } else if ('fixed' in e) {
      if (compare(version, e.fixed) >= 0) affected = false;
    } else if ('last_affected' in e) {
      if (compare(version, e.last_affected) > 0) affected = false;
    } else if (compare(version, e.limit) >= 0) {
      affected = false;
    }
  }
  const next = sorted.find((e): e is { fixed: string } => 'fixed' in e && compare(e.fixed, version) > 0);
  return next ? { affected, fixed: next.fixed } : { affected };
}

function parseEvents(value: unknown): OsvEvent[] {
  const events: OsvEvent[] = [];
  for (const e of Array.isArray(value) ? value : []) {
    if (!isObject(e)) continue;
    for (const kind of ['introduced', 'fixed', 'last_affected', 'limit'] as const) {
      if (typeof e[kind] === 'string') {
        events.push({ [kind]: e[kind] } as OsvEvent);
        break;
      }
    }
  }
  return events;
}

/**
 * A stated severity wins (the record's `database_specific.severity`, else the affected entry's
 * `ecosystem_specific`/`database_specific` one); else the highest CVSS v3 base score among the
 * record's and the entry's `severity[]` vectors; else undefined (counted as unknown).
 */
export function severityOf(record: OsvRecord, affected: OsvAffected): SeverityBand | undefined {
  const stated = [record.database_specific, affected.ecosystem_specific, affected.database_specific]
    .map((o) => (isObject(o) ? normaliseSeverity(o.severity) : undefined))
    .find((s) => s !== undefined);
  if (stated) return stated;
  let best: number | undefined;
  for (const s of [...asArray(record.severity), ...asArray(affected.severity)]) {
    if (!isObject(s) || (s.type !== 'CVSS_V3' && s.type !== 'CVSS_V31') || typeof s.score !== 'string') continue;
    const score = cvss3BaseScore(s.score);
    if (score !== undefined && (best === undefined || score > best)) best = score;
  }
  return best === undefined ? undefined : severityFromScore(best);
}

function summaryOf(record: OsvRecord): string | undefined {
  const text =
    typeof record.summary === 'string' && record.summary.trim() ? record.summary : typeof record.details === 'string' ? record.details : '';
  const line = text.trim().split('\n')[0]?.trim() ?? '';
  return line ? (line.length > 200 ? `${line.slice(0, 199)}…` : line) : undefined;
}

function parseJsonFile(text: string, path: string): unknown[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new Error(`advisory file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  return Array.isArray(value) ? value : [value];
}

/** Records of an NDJSON file, or undefined when some non-blank line is not a JSON value by itself. */
async function readNdjson(path: string): Promise<unknown[] | undefined> {
  const records: unknown[] = [];
  const input = createReadStream(path, 'utf8');
  const lines = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  try {
    for await (const line of lines) {
      if (line.trim() === '') continue;
      try {
        records.push(JSON.parse(line));
      } catch {
        return undefined;
      }
    }
  } finally {
    lines.close();
    input.destroy();
  }
  return records;
}

async function firstNonBlankChar(path: string): Promise<string | undefined> {
  const file = await open(path, 'r');
  try {
    const buf = Buffer.alloc(4096);
    const { bytesRead } = await file.read(buf, 0, buf.length, 0);
    return /\S/.exec(buf.toString('utf8', 0, bytesRead))?.[0];
  } finally {
    await file.close();
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

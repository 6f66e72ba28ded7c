/**
 * `scaibunker certify`: the provider conformance suite (certifySuite.ts, one node:test file) run
 * in a child test process against this host's providers, and the report of it — every check
 * with pass/fail/skip and its duration, plus the host's facts (HostFacts).
 */
import { dirname, extname, join } from 'node:path';
import { run } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CERTIFY_CONFIG_ENV, type CertifyConfig } from './CertifyConfig.js';
import { HostFacts, type HostFactsReport } from './HostFacts.js';

export interface CertifyCheck {
  /** The suite (provider) it belongs to: "provider conformance: container: crun, runc fallback". */
  suite: string;
  name: string;
  status: 'pass' | 'fail' | 'skip';
  duration_ms: number;
  /** Why it failed, or why it was skipped. */
  detail?: string;
}

export interface CertifyReport {
  ok: boolean;
  host: HostFactsReport;
  config: Omit<CertifyConfig, 'image'> & { image: string };
  checks: CertifyCheck[];
  summary: { pass: number; fail: number; skip: number };
  duration_ms: number;
}

interface TestEventData {
  name: string;
  nesting: number;
  skip?: string | boolean;
  todo?: string | boolean;
  file?: string;
  details: { duration_ms: number; type?: 'suite' | 'test'; error?: Error & { cause?: unknown; failureType?: string } };
}

/**
 * The suite file next to this one (.ts from source, .js when built), run under tsx's loader
 * either way: a plugin module may import `@scaibunker/worker`, whose exports are TypeScript.
 */
function suiteFile(): { file: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  const file = join(dirname(here), `certifySuite${extname(here)}`);
  return { file, execArgv: ['--import', fileURLToPath(import.meta.resolve('tsx'))] };
}

export class Certification {
  constructor(private readonly config: CertifyConfig) {}

  /** Runs the suite; `only`: test name patterns selecting a subset of the checks. */
  async run(opts: { only?: string[]; onCheck?: (c: CertifyCheck) => void } = {}): Promise<CertifyReport> {
    const t0 = performance.now();
    const host = await new HostFacts(this.config.firecrackerBin ? { firecrackerBin: this.config.firecrackerBin } : {}).collect();
    const { file, execArgv } = suiteFile();
    const checks: CertifyCheck[] = [];
    const suites: string[] = [];
    /** What the test process printed on stderr: the reason when it fails before any check ran. */
    const stderr: string[] = [];
    const stream = run({
      files: [file],
      concurrency: 1,
      execArgv,
      env: { ...process.env, [CERTIFY_CONFIG_ENV]: JSON.stringify(this.config) },
      ...(opts.only?.length ? { testNamePatterns: opts.only.map((p) => new RegExp(p)) } : {}),
    });
    const record = (d: TestEventData, failed: boolean) => {
      if (d.details.type === 'suite' || d.nesting === 0) {
        // a suite "fails" when one of its checks did: that check is already reported
        if (failed && d.details.error?.failureType === 'subtestsFailed') return;
        // a suite skipped as a whole (its provider cannot run here), or one whose hooks failed
        if (d.skip || failed) {
          const check: CertifyCheck = {
            suite: d.nesting === 0 && d.file === d.name ? 'certify' : d.name,
            name: d.skip ? '(whole suite)' : '(suite set-up or clean-up)',
            status: d.skip ? 'skip' : 'fail',
            duration_ms: Math.round(d.details.duration_ms),
            ...(typeof d.skip === 'string'
              ? { detail: d.skip }
              : failed
                ? {
                    detail: [errorText(d.details.error), stderr.join('').trim().split('\n').slice(-6).join(' | ')]
                      .filter(Boolean)
                      .join(': ')
                      .slice(0, 1200),
                  }
                : {}),
          };
          checks.push(check);
          opts.onCheck?.(check);
        }
        return;
      }
      const check: CertifyCheck = {
        suite: suites[d.nesting - 1] ?? '',
        name: d.name,
        status: failed ? 'fail' : d.skip ? 'skip' : 'pass',
        duration_ms: Math.round(d.details.duration_ms),
        ...(failed ? { detail: errorText(d.details.error) } : typeof d.skip === 'string' ? { detail: d.skip } : {}),
      };
      checks.push(check);
      opts.onCheck?.(check);
    };
    stream.on('test:start', (d: TestEventData) => {
      suites[d.nesting] = d.name;
    });
    stream.on('test:stderr', (d: { message: string }) => {
      stderr.push(d.message);
    });
    stream.on('test:pass', (d: TestEventData) => record(d, false));
    stream.on('test:fail', (d: TestEventData) => record(d, true));
    for await (const _ of stream) {
      // events are handled above; draining the stream runs the suite
    }
    const summary = {
      pass: checks.filter((c) => c.status === 'pass').length,
      fail: checks.filter((c) => c.status === 'fail').length,
      skip: checks.filter((c) => c.status === 'skip').length,
    };
    const { image, ...rest } = this.config;
    return {
      ok: summary.fail === 0 && summary.pass > 0,
      host,
      config: { ...rest, image: image.path },
      checks,
      summary,
      duration_ms: Math.round(performance.now() - t0),
    };
  }
}

function errorText(e: (Error & { cause?: unknown }) | undefined): string {
  const inner = (e?.cause ?? e) as Error | undefined;
  return (inner?.message ?? String(inner ?? 'failed'))
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .slice(0, 16)
    .join(' ')
    .slice(0, 1200);
}

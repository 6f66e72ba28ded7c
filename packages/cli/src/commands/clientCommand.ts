/**
 * What every client verb (bunker …, admin …) shares: the connection options, the SDK client
 * built from them, JSON output, and one way of reporting errors and exit codes:
 *   API/SDK errors  → `scaibunker: <CODE>: <message>` on stderr, exit 1
 *   usage errors    → commander's message on stderr, exit 2
 */
import { readFile } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
import { DEFAULT_BASE_URL, type ExecResult, ScaiBunkerClient, ScaiBunkerError } from '@scaibunker/sdk';
import { type Command, type CommanderError, InvalidArgumentError } from 'commander';

export const DEFAULT_ADMIN_KEY_FILE = '/var/lib/scaibunker/admin.key';

export interface ClientFlags {
  url?: string;
  apiKey?: string;
  apiKeyFile?: string;
  json?: boolean;
}

/** Adds --url, --api-key, --api-key-file and --json to a verb. */
export function withClientOptions(cmd: Command): Command {
  return cmd
    .option('--url <url>', `API server (default: $SCAIBUNKER_URL or ${DEFAULT_BASE_URL})`, httpUrl)
    .option('--api-key <key>', `API key (default: $SCAIBUNKER_API_KEY, else ${DEFAULT_ADMIN_KEY_FILE} if readable)`)
    .option('--api-key-file <path>', 'read the API key from this file')
    .option('--json', 'machine output: exactly one JSON document on stdout');
}

/** Usage errors exit 2 (help and version still exit 0). Set on a group before adding its verbs: they inherit it. */
export function exitTwoOnUsageErrors(cmd: Command): Command {
  return cmd.exitOverride((err: CommanderError) => {
    process.exit(err.exitCode === 0 ? 0 : 2);
  });
}

async function readKeyFile(path: string): Promise<string> {
  return (await readFile(path, 'utf8')).trim();
}

/** The key, in order: --api-key, --api-key-file, $SCAIBUNKER_API_KEY, the local admin key file. */
export async function resolveApiKey(flags: ClientFlags): Promise<string | undefined> {
  if (flags.apiKey) return flags.apiKey;
  if (flags.apiKeyFile) return readKeyFile(flags.apiKeyFile);
  if (process.env.SCAIBUNKER_API_KEY) return process.env.SCAIBUNKER_API_KEY;
  try {
    return await readKeyFile(DEFAULT_ADMIN_KEY_FILE);
  } catch {
    return undefined;
  }
}

export async function clientFrom(flags: ClientFlags): Promise<ScaiBunkerClient> {
  const apiKey = await resolveApiKey(flags);
  return new ScaiBunkerClient({
    baseUrl: flags.url ?? process.env.SCAIBUNKER_URL ?? DEFAULT_BASE_URL,
    ...(apiKey ? { apiKey } : {}),
  });
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** Writes to stdout, waiting for it to drain when its buffer is full. */
export function writeStdout(text: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(text, (err) => (err ? reject(err) : resolve()));
  });
}

/** Exit code of the CLI for a finished command: its own code, 124 on timeout, 128+N for signal N. */
export function exitCodeOf(result: Pick<ExecResult, 'exit_code' | 'signal' | 'timed_out'>): number {
  if (result.timed_out) return 124;
  if (result.exit_code !== null) return result.exit_code;
  const signal = result.signal ? (osConstants.signals as Record<string, number | undefined>)[result.signal] : undefined;
  return signal ? 128 + signal : 1;
}

function describeError(err: unknown): string {
  if (err instanceof ScaiBunkerError) return `${err.code}: ${err.message}`;
  const e = err as { code?: unknown; message?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (typeof e?.code === 'string' && /^[A-Z][A-Z0-9_]+$/.test(e.code)) {
    return message.startsWith(`${e.code}: `) ? message : `${e.code}: ${message}`;
  }
  return `ERROR: ${message}`;
}

/**
 * Wraps a verb's action: the action returns the process exit code (default 0); any error is
 * reported as `scaibunker: CODE: message` with exit code 1.
 */
export function clientAction<A extends unknown[]>(fn: (...args: A) => Promise<number | undefined>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      process.exitCode = (await fn(...args)) ?? 0;
    } catch (err) {
      process.stderr.write(`scaibunker: ${describeError(err)}\n`);
      process.exitCode = 1;
    }
  };
}

// ---- option value parsers (a bad value is a usage error) --------------------------------------

export function httpUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('expected a URL such as http://127.0.0.1:8080');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError('expected an http:// or https:// URL');
  return value;
}

export function positiveInt(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1) throw new InvalidArgumentError('expected a positive integer');
  return Number(value);
}

export function nonNegativeInt(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError('expected a whole number (0 or more)');
  return Number(value);
}

/** A cap: `none` (no cap; kept as the string, since commander cannot store null), `0`, or a value read by `parse`. */
export function capOf(parse: (value: string) => number): (value: string) => number | 'none' {
  return (value) => {
    if (value === 'none') return 'none';
    if (/^0+$/.test(value)) return 0;
    return parse(value);
  };
}

export function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

/** `K=V`, repeatable: collected into an object. */
export function keyValue(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const i = value.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError('expected KEY=VALUE');
  return { ...previous, [value.slice(0, i)]: value.slice(i + 1) };
}

/** CPU as cores (`1`, `0.5`) or millicores (`500m`) → millicores. */
export function cpuMillicores(value: string): number {
  const m = /^(\d+)m$/.exec(value);
  const millis = m ? Number(m[1]) : Number(value) * 1000;
  if (!Number.isFinite(millis) || millis <= 0 || !Number.isInteger(Math.round(millis))) {
    throw new InvalidArgumentError('expected cores (e.g. 0.5) or millicores (e.g. 500m)');
  }
  return Math.round(millis);
}

/** A size in MiB: `512`, `512m`, `2g` → MiB. */
export function sizeMb(value: string): number {
  const m = /^(\d+(?:\.\d+)?)([mMgG]?)[iI]?[bB]?$/.exec(value);
  if (!m) throw new InvalidArgumentError('expected a size in MiB, or with a unit (512m, 2g)');
  const n = Number(m[1]) * (m[2]?.toLowerCase() === 'g' ? 1024 : 1);
  if (n <= 0) throw new InvalidArgumentError('expected a positive size');
  return Math.round(n);
}

/** A repeatable option collected into an array. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const CLI = new URL('../../packages/cli/bin/scaibunker.js', import.meta.url).pathname;
export const IMAGE_DIR = process.env.SCAIBUNKER_IMAGE_DIR ?? '/var/lib/scaibunker/images';
export const FAST_INTERVALS = ['--heartbeat-interval-ms', '200', '--monitor-interval-ms', '200', '--sweep-interval-ms', '200'];

/** A `scaibunker …` server process; resolves once it prints its listening line. */
export class ServerProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly url: string,
    readonly output: () => string,
  ) {}

  static async start(args: string[], env: Record<string, string> = {}, ready = /(http:\/\/[\d.]+:\d+)/): Promise<ServerProcess> {
    // A worker started here plumbs no bunker networks unless the caller asks (--network …): its
    // reconcile would remove the kernel objects of any other worker on this machine using the
    // default name prefix, and tests that need networks use their own prefix and subnet.
    if ((args[0] === 'serve' || args[0] === 'worker') && !args.includes('--network')) args = [...args, '--network', 'off'];
    // SCAIBUNKER_SERVER_NODE_ARGS: extra node flags for every server a test or bench starts (e.g. --cpu-prof).
    const nodeArgs = process.env.SCAIBUNKER_SERVER_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    const child = spawn(process.execPath, [...nodeArgs, CLI, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
    });
    child.stderr?.on('data', (d) => {
      out += d;
    });
    const url = await new Promise<string>((resolve, reject) => {
      const onData = () => {
        const m = ready.exec(out);
        if (m?.[1]) {
          child.stdout?.off('data', onData);
          resolve(m[1]);
        }
      };
      child.stdout?.on('data', onData);
      child.once('exit', (code) => reject(new Error(`scaibunker ${args[0]} exited with ${code}:\n${out}`)));
    });
    return new ServerProcess(child, url, () => out);
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill(signal);
    await exited;
  }
}

export function tempDataDir(): { dir: string; remove(): void } {
  // Short paths: bunker agent sockets live below and Unix socket paths are limited to 108 bytes.
  const dir = mkdtempSync('/tmp/sbe-');
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function adminKeyOf(dataDir: string): string {
  return readFileSync(join(dataDir, 'admin.key'), 'utf8').trim();
}

/** Polls a condition the API exposes no event for (state changes made by background jobs). */
export async function eventually<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Mounts under a directory: must be none once a server is gone and its bunkers are destroyed. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((p) => p.startsWith(dir));
}

/** A port that was free a moment ago, so a restarted server can keep its address. */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * Test cleanup when a test failed half-way: destroys every bunker still on disk under a
 * worker's data dir (a killed worker leaves its bunkers running) and releases image mounts.
 */
export async function destroyLeftoverBunkers(workerDataDir: string): Promise<string[]> {
  const { ContainerProvider } = await import('@scaibunker/worker');
  const provider = new ContainerProvider({ dataDir: workerDataDir });
  const left = await provider.list();
  for (const b of left) await provider.destroy(b.id);
  await provider.shutdown();
  return left.map((b) => b.id);
}

/** Everything a terminal (SDK `Terminal`) printed, and a wait for a pattern to appear in it. */
export function terminalScreen(term: { onData(listener: (chunk: Buffer) => void): () => void }) {
  let out = '';
  const waiters = new Set<() => void>();
  term.onData((c) => {
    out += c.toString();
    for (const w of [...waiters]) w();
  });
  return {
    text: () => out,
    /** Resolves once `re` matches what was printed so far (the test's timeout bounds it). */
    waitFor: (re: RegExp) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (!re.test(out)) return;
          waiters.delete(check);
          resolve();
        };
        waiters.add(check);
        check();
      }),
  };
}

/** One API call with a bearer key: its status and JSON answer (null when it has none). */
export async function apiCall(url: string, key: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, json: (await res.json().catch(() => null)) as any };
}

/**
 * A scaled-out ScaiBunker on this machine for tests and benches: a fresh PostgreSQL database, a
 * private Redis server, two `scaibunker controller` processes sharing both (and one data
 * directory, standing in for the shared blob store), and one `scaibunker worker` heartbeating to
 * the first controller.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect } from 'node:net';
import { join } from 'node:path';
import { ScaiBunkerClient } from '@scaibunker/sdk';
import pg from 'pg';
import { DIALECTS, type TestDatabase } from '../../packages/controller/test/helpers/databases.js';
import { adminKeyOf, destroyLeftoverBunkers, eventually, freePort, IMAGE_DIR, mountsUnder, ServerProcess, tempDataDir } from './harness.js';

const ROOT = new URL('../..', import.meta.url).pathname;

/**
 * Benches: when the test command did not set SCAIBUNKER_TEST_PG_URL, start the test services
 * (PostgreSQL, idempotent) the way `npm test` does and take their URLs.
 */
export function ensureTestServices(): void {
  if (process.env.SCAIBUNKER_TEST_PG_URL) return;
  const out = execFileSync('bash', [join(ROOT, 'scripts/test-services.sh'), '--env'], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  for (const line of out.split('\n')) {
    const m = /^(SCAIBUNKER_TEST_\w+)=(.*)$/.exec(line.trim());
    // printf %q output: shell metacharacters (the URL's `?`) come backslash-escaped.
    if (m?.[1] && m[2] !== undefined) process.env[m[1]] = m[2].replace(/\\(.)/g, '$1');
  }
}

/** A fresh, uniquely named database on the test PostgreSQL (dropped by `cleanup`). */
export async function createPgDatabase(): Promise<TestDatabase> {
  const postgres = DIALECTS.find((d) => d.name === 'postgres');
  if (!postgres) throw new Error('no postgres dialect in the test helpers');
  return postgres.create();
}

/** One SQL query on a database with a connection of its own. */
export async function sqlQuery<T = Record<string, unknown>>(url: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return (await c.query(text, params)).rows as T[];
  } finally {
    await c.end();
  }
}

/** A redis-server of our own on a free port, no persistence: killing it loses everything, as intended. */
export class PrivateRedis {
  private child: ChildProcess | undefined;

  private constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  static async start(): Promise<PrivateRedis> {
    const r = new PrivateRedis(await freePort());
    await r.startProcess();
    return r;
  }

  /** (Re)starts the server on the same port, empty. */
  async startProcess(): Promise<void> {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) throw new Error('redis-server is running');
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--logfile', ''],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    let out = '';
    child.stdout?.on('data', (d) => {
      out += d;
    });
    child.stderr?.on('data', (d) => {
      out += d;
    });
    const exited = once(child, 'exit').then(() => {
      throw new Error(`redis-server exited:\n${out}`);
    });
    exited.catch(() => undefined);
    await Promise.race([eventually('redis-server answers PING', async () => ((await this.ping()) ? true : undefined), 10_000), exited]);
  }

  private ping(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = connect(this.port, '127.0.0.1');
      let got = '';
      s.setTimeout(1000, () => s.destroy());
      s.on('connect', () => s.write('PING\r\n'));
      s.on('data', (d) => {
        got += d;
        if (got.includes('\r\n')) s.end();
      });
      s.on('close', () => resolve(got.startsWith('+PONG')));
      s.on('error', () => undefined);
    });
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    await exited;
  }
}

export interface ClusterOptions {
  /** Extra flags for both controllers (intervals, --stuck-create-ms, --trace-jobs…). */
  controllerArgs?: string[];
  /** Worker heartbeat interval; the controllers are told the same. Default 10 s. */
  heartbeatMs?: number;
  log?: (msg: string) => void;
}

/** Two controllers (A = 0, B = 1) on one PostgreSQL database and one Redis, and one worker heartbeating to A. */
export class Cluster {
  readonly token = randomBytes(24).toString('hex');
  readonly data = tempDataDir();
  readonly controllers: Array<ServerProcess | undefined> = [undefined, undefined];
  /** Every controller process started so far, restarted ones included (their output stays readable). */
  readonly controllerHistory: ServerProcess[] = [];
  readonly ports: number[] = [];
  worker: ServerProcess | undefined;
  adminKey = '';
  private readonly heartbeatMs: number;

  private constructor(
    readonly db: TestDatabase,
    readonly redis: PrivateRedis,
    private readonly opts: ClusterOptions,
  ) {
    this.heartbeatMs = opts.heartbeatMs ?? 10_000;
  }

  /** Starts everything; on failure, stops whatever started and rethrows. */
  static async start(opts: ClusterOptions = {}): Promise<Cluster> {
    const log = opts.log ?? (() => undefined);
    const db = await createPgDatabase();
    let redis: PrivateRedis;
    try {
      redis = await PrivateRedis.start();
    } catch (err) {
      await db.cleanup();
      throw err;
    }
    const c = new Cluster(db, redis, opts);
    try {
      c.ports.push(await freePort(), await freePort());
      log(`[cluster] database ${new URL(db.url).pathname.slice(1)}, redis :${redis.port}`);
      // Both at once on the fresh database: migrations and the bootstrap must cope.
      const started = await Promise.allSettled([c.startController(0), c.startController(1)]);
      for (const r of started) if (r.status === 'rejected') throw r.reason;
      c.adminKey = adminKeyOf(c.controllerDataDir);
      c.worker = await c.startWorker();
      const admin = c.client(0, c.adminKey);
      await eventually('worker online', async () => ((await admin.workers.list()).some((w) => w.state === 'online') ? true : undefined));
      log(`[cluster] controllers ${c.url(0)} ${c.url(1)}, worker ${c.worker.url}`);
      return c;
    } catch (err) {
      await c.close().catch(() => undefined);
      throw err;
    }
  }

  /** Both controllers share it (admin.key, and the blobs: a stand-in for the shared S3 bucket). */
  get controllerDataDir(): string {
    return join(this.data.dir, 'c');
  }

  get workerDataDir(): string {
    return join(this.data.dir, 'w');
  }

  url(i: number): string {
    return `http://127.0.0.1:${this.ports[i]}`;
  }

  client(i: number, apiKey: string): ScaiBunkerClient {
    return new ScaiBunkerClient({ baseUrl: this.url(i), apiKey });
  }

  env(): Record<string, string> {
    return { SCAIBUNKER_WORKER_TOKEN: this.token, DATABASE_URL: this.db.url, REDIS_URL: this.redis.url };
  }

  /** (Re)starts controller i on its port. */
  async startController(i: number): Promise<ServerProcess> {
    const p = await ServerProcess.start(
      [
        'controller',
        '--port',
        String(this.ports[i]),
        '--data-dir',
        this.controllerDataDir,
        '--image-dir',
        IMAGE_DIR,
        '--heartbeat-interval-ms',
        String(this.heartbeatMs),
        ...(this.opts.controllerArgs ?? []),
      ],
      this.env(),
    );
    this.controllers[i] = p;
    this.controllerHistory.push(p);
    return p;
  }

  async stopController(i: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.controllers[i]?.kill(signal);
  }

  private async startWorker(): Promise<ServerProcess> {
    const port = await freePort();
    return ServerProcess.start(
      [
        'worker',
        '--controller',
        this.url(0),
        '--port',
        String(port),
        '--data-dir',
        this.workerDataDir,
        '--image-dir',
        IMAGE_DIR,
        '--heartbeat-interval-ms',
        String(this.heartbeatMs),
        '--isolations',
        'container',
      ],
      { SCAIBUNKER_WORKER_TOKEN: this.token },
      /worker wk_\w+ at (http:\/\/[\d.]+:\d+)/,
    );
  }

  /**
   * Stops every process, destroys what the product left on the worker, drops the database and
   * removes the data directory. Answers what had to be cleaned up by force (tests assert none).
   */
  async close(): Promise<{ orphans: string[]; mounts: string[] }> {
    const errors: unknown[] = [];
    const attempt = async (fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        errors.push(err);
      }
    };
    await attempt(async () => this.worker?.kill());
    await Promise.all(this.controllers.map((c) => attempt(async () => c?.kill())));
    let orphans: string[] = [];
    await attempt(async () => {
      orphans = await destroyLeftoverBunkers(this.workerDataDir);
    });
    const mounts = mountsUnder(this.data.dir);
    await attempt(() => this.redis.kill());
    await attempt(() => this.db.cleanup());
    if (mounts.length === 0) this.data.remove();
    if (errors.length > 0) throw new AggregateError(errors, 'cluster cleanup failed');
    return { orphans, mounts };
  }
}

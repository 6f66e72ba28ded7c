/**
 * The `identity` op, exercised against an agent that cannot touch the host:
 *
 *   unshare --uts --mount   own hostname; a private mount namespace for the /dev bind mount
 *                           and the read-only /etc case
 *   chroot ROOT             /etc/machine-id is ROOT/etc/machine-id, a directory this test owns
 *   setpriv --bounding-set -sys_time
 *                           no CAP_SYS_TIME: clock_settime fails with EPERM, so the clock step
 *                           is tested up to the syscall without ever changing the host's clock
 *
 * Entropy goes to the real kernel pool (harmless: it only adds input). Skipped when not root
 * or the tools are missing.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { AgentClient } from '../../src/agent/AgentClient.js';
import { AgentError } from '../../src/agent/AgentError.js';
import { encodeJsonFrame, type Frame, FrameDecoder, FrameType } from '../../src/agent/protocol.js';
import { AGENT_BIN, buildAgent } from './helpers.js';

const CAP_SYS_TIME = 25;

function canSandbox(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('unshare', ['--uts', '--mount', 'setpriv', '--bounding-set', '-sys_time', 'chroot', '/', 'true'], {
      stdio: 'ignore',
    });
    execFileSync('nsenter', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const available = canSandbox();
const skip = !available && 'needs root, unshare, setpriv, chroot and nsenter';
let root: string;
let proc: ChildProcess | undefined;
let exited: Promise<unknown> | undefined;
let client: AgentClient | undefined;
const hostHostname = os.hostname();

before(async () => {
  if (!available) return;
  buildAgent();
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-identity-test-'));
  fs.mkdirSync(path.join(root, 'etc'));
  fs.mkdirSync(path.join(root, 'dev'));
  fs.copyFileSync(AGENT_BIN, path.join(root, 'agent'));
  fs.chmodSync(path.join(root, 'agent'), 0o755);
  // unshare and sh exec into setpriv, chroot and the agent: proc.pid is the agent itself.
  proc = spawn(
    'unshare',
    [
      '--uts',
      '--mount',
      '--propagation',
      'private',
      'sh',
      '-c',
      'mount --bind /dev "$1/dev" && exec setpriv --bounding-set -sys_time chroot "$1" /agent --listen /run/agent.sock --no-init',
      'sh',
      root,
    ],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  );
  exited = once(proc, 'exit');
  client = await AgentClient.connect(path.join(root, 'run/agent.sock'), { timeoutMs: 10_000, awaitHello: true });
});

after(async () => {
  client?.close();
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    proc.kill('SIGKILL');
    await exited;
  }
  if (root) fs.rmSync(root, { recursive: true, force: true });
  // whatever happened, the host's hostname is untouched
  assert.equal(os.hostname(), hostHostname);
});

function agentPid(): number {
  assert.ok(proc?.pid);
  assert.equal(fs.readlinkSync(`/proc/${proc.pid}/exe`), path.join(root, 'agent'), 'proc.pid is the agent');
  return proc.pid;
}

/** The hostname in the agent's UTS namespace. */
function agentHostname(): string {
  return execFileSync('nsenter', [`--uts=/proc/${agentPid()}/ns/uts`, 'hostname'], { encoding: 'utf8' }).trim();
}

/** Runs a command in the agent's mount namespace (where the /dev bind mount lives). */
function inAgentMountNs(argv: string[]): void {
  execFileSync('nsenter', [`--mount=/proc/${agentPid()}/ns/mnt`, ...argv], { stdio: 'pipe' });
}

function hasCap(pid: number, cap: number): boolean {
  const m = /CapEff:\s+([0-9a-f]+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m?.[1]);
  return ((BigInt(`0x${m[1]}`) >> BigInt(cap)) & 1n) === 1n;
}

function c(): AgentClient {
  assert.ok(client);
  return client;
}

function isAgentError(code: string, errno?: string) {
  return (e: unknown) => {
    assert.ok(e instanceof AgentError, String(e));
    assert.equal(e.code, code, e.message);
    if (errno) assert.equal(e.errno, errno);
    return true;
  };
}

/** Sends raw identity requests (for member types the typed client cannot produce). */
async function rawRequests(reqs: Record<string, unknown>[]): Promise<Map<number, Frame>> {
  const sock = net.createConnection({ path: path.join(root, 'run/agent.sock') });
  await once(sock, 'connect');
  const dec = new FrameDecoder();
  const terminal = new Map<number, Frame>();
  const done = new Promise<void>((resolve) => {
    sock.on('data', (d: Buffer) => {
      for (const f of dec.push(d)) {
        if (f.stream !== 0 && (f.type === FrameType.RESULT || f.type === FrameType.ERROR)) terminal.set(f.stream, f);
      }
      if (terminal.size === reqs.length) resolve();
    });
  });
  reqs.forEach((r, i) => {
    sock.write(encodeJsonFrame(i + 1, FrameType.OPEN, { op: 'identity', ...r }));
  });
  await done;
  sock.destroy();
  return terminal;
}

const ID1 = '0123456789abcdef0123456789abcdef';
const ID2 = 'fedcba9876543210fedcba9876543210';

test('identity: hostname, machine-id and entropy are applied and reported', { skip }, async () => {
  const before = agentHostname();
  const r = await c().identity({ hostname: 'bk-abc.test', machineId: ID1, entropy: Buffer.alloc(64, 7) });
  assert.deepEqual(r, { hostname: 'bk-abc.test', machineId: ID1, entropyBytes: 64, clockSet: false });
  assert.notEqual(before, 'bk-abc.test');
  assert.equal(agentHostname(), 'bk-abc.test');
  assert.equal(os.hostname(), hostHostname, 'the host keeps its hostname');

  const idPath = path.join(root, 'etc/machine-id');
  assert.equal(fs.readFileSync(idPath, 'utf8'), `${ID1}\n`);
  assert.equal(fs.statSync(idPath).mode & 0o7777, 0o444);

  // replaced atomically (over a read-only file), no temp file left behind
  const r2 = await c().identity({ machineId: ID2 });
  assert.deepEqual(r2, { hostname: null, machineId: ID2, entropyBytes: 0, clockSet: false });
  assert.equal(fs.readFileSync(idPath, 'utf8'), `${ID2}\n`);
  assert.equal(fs.statSync(idPath).mode & 0o7777, 0o444);
  assert.deepEqual(fs.readdirSync(path.join(root, 'etc')), ['machine-id']);

  // entropy bounds: 1 and 512 bytes; unpadded base64 is accepted too
  assert.equal((await c().identity({ entropy: Buffer.alloc(1, 1) })).entropyBytes, 1);
  assert.equal((await c().identity({ entropy: Buffer.alloc(512, 2) })).entropyBytes, 512);
  const raw = await rawRequests([{ entropy: 'AAA' }, { entropy: 'AAA=' }]);
  assert.equal(JSON.parse(raw.get(1)?.payload.toString() ?? '{}').entropy_bytes, 2);
  assert.equal(JSON.parse(raw.get(2)?.payload.toString() ?? '{}').entropy_bytes, 2);
});

test('identity: the clock step reaches clock_settime (EPERM without CAP_SYS_TIME)', { skip }, async () => {
  // the guard that keeps this test from ever moving the host's clock
  assert.equal(hasCap(agentPid(), CAP_SYS_TIME), false, 'the test agent must not hold CAP_SYS_TIME');
  const now = BigInt(Date.now()) * 1_000_000n;
  await assert.rejects(c().identity({ timeUnixNs: now }), isAgentError('PERMISSION_DENIED', 'EPERM'));
  // a JSON number is accepted as well (validated, then the same syscall)
  const raw = await rawRequests([{ time_unix_ns: Date.now() * 1_000_000 }]);
  const err = JSON.parse(raw.get(1)?.payload.toString() ?? '{}');
  assert.equal(raw.get(1)?.type, FrameType.ERROR);
  assert.equal(err.errno, 'EPERM');
  assert.match(err.message, /clock_settime/);

  // not transactional: the steps before the failing one stay applied
  await assert.rejects(c().identity({ hostname: 'bk-before-clock', timeUnixNs: now }), isAgentError('PERMISSION_DENIED'));
  assert.equal(agentHostname(), 'bk-before-clock');
});

test('identity: missing or read-only /etc fails with the errno-style error', { skip }, async () => {
  const etc = path.join(root, 'etc');
  const away = path.join(root, 'etc.away');
  fs.renameSync(etc, away);
  try {
    await assert.rejects(c().identity({ machineId: ID1 }), isAgentError('NOT_FOUND', 'ENOENT'));
  } finally {
    fs.renameSync(away, etc);
  }
  // read-only bind mount of /etc, only inside the agent's private mount namespace
  inAgentMountNs(['mount', '--bind', etc, etc]);
  try {
    inAgentMountNs(['mount', '-o', 'remount,bind,ro', etc]);
    await assert.rejects(c().identity({ machineId: ID1 }), isAgentError('PERMISSION_DENIED', 'EROFS'));
  } finally {
    inAgentMountNs(['umount', etc]);
  }
  assert.equal(fs.readFileSync(path.join(etc, 'machine-id'), 'utf8'), `${ID2}\n`, 'unchanged');
  assert.deepEqual(fs.readdirSync(etc), ['machine-id'], 'no temp file left behind');
});

test('identity: invalid members are INVALID_ARGUMENT and nothing is changed', { skip }, async () => {
  await c().identity({ hostname: 'bk-valid' });
  const idBefore = fs.readFileSync(path.join(root, 'etc/machine-id'), 'utf8');
  const bad: Record<string, unknown>[] = [
    {},
    { hostname: null, machine_id: null, entropy: null, time_unix_ns: null },
    { hostname: '' },
    { hostname: 'a'.repeat(65) },
    { hostname: 'under_score' },
    { hostname: 'with space' },
    { hostname: 'ünï' },
    { hostname: 42 },
    { machine_id: ID1.toUpperCase() },
    { machine_id: ID1.slice(1) },
    { machine_id: `${ID1.slice(1)}g` },
    { machine_id: 7 },
    { entropy: '' },
    { entropy: '====' },
    { entropy: 'A' },
    { entropy: 'not base64!' },
    { entropy: 'AA=A' },
    { entropy: Buffer.alloc(513).toString('base64') },
    { entropy: 12 },
    { time_unix_ns: '-1' },
    { time_unix_ns: '1.5' },
    { time_unix_ns: '' },
    { time_unix_ns: 'now' },
    { time_unix_ns: '99999999999999999999' },
    { time_unix_ns: '9223372036854775808' },
    { time_unix_ns: -1 },
    { time_unix_ns: 1.5 },
    { time_unix_ns: true },
    // one bad member spoils the whole request: the valid ones before it are not applied
    { hostname: 'bk-not-applied', machine_id: 'nope' },
    { hostname: 'bk-not-applied', machine_id: ID1, entropy: 'AAAA', time_unix_ns: 'x' },
    { machine_id: ID1, entropy: '!!' },
  ];
  const got = await rawRequests(bad);
  bad.forEach((req, i) => {
    const f = got.get(i + 1);
    assert.equal(f?.type, FrameType.ERROR, `${JSON.stringify(req)} → ${f?.payload.toString()}`);
    assert.equal(JSON.parse(f?.payload.toString() ?? '{}').code, 'INVALID_ARGUMENT', JSON.stringify(req));
  });
  assert.equal(agentHostname(), 'bk-valid');
  assert.equal(fs.readFileSync(path.join(root, 'etc/machine-id'), 'utf8'), idBefore);

  // the typed client maps its members the same way
  await assert.rejects(c().identity({}), isAgentError('INVALID_ARGUMENT'));
  await assert.rejects(c().identity({ timeUnixNs: -1n }), isAgentError('INVALID_ARGUMENT'));
  await assert.rejects(c().identity({ entropy: Buffer.alloc(0) }), isAgentError('INVALID_ARGUMENT'));
  await assert.rejects(c().identity({ hostname: 'x'.repeat(65) }), isAgentError('INVALID_ARGUMENT'));
  // the maximum lengths are fine
  assert.equal((await c().identity({ hostname: 'h'.repeat(64) })).hostname, 'h'.repeat(64));
  assert.equal(agentHostname(), 'h'.repeat(64));
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { AgentClient } from '../../src/agent/AgentClient.js';
import { AgentError } from '../../src/agent/AgentError.js';
import {
  AGENT_BIN,
  collector,
  type Fifo,
  makeFifo,
  passwdEntry,
  procState,
  type RunningAgent,
  rssBytes,
  startAgent,
  stopAllAgents,
} from './helpers.js';

let agent: RunningAgent;
let client: AgentClient;
const fifos: Fifo[] = [];
const clients: AgentClient[] = [];

before(async () => {
  agent = startAgent({ env: { PATH: process.env.PATH ?? '/usr/bin:/bin', SB_TEST_AGENT_SECRET: 'leak' } });
  client = await AgentClient.connect(agent.socketPath, { timeoutMs: 10_000 });
  clients.push(client);
});

after(async () => {
  for (const c of clients) c.close();
  for (const f of fifos) f.release();
  await stopAllAgents();
});

function fifo(name: string): Fifo {
  const f = makeFifo(agent.dir, name);
  fifos.push(f);
  return f;
}

const isAgentError = (code: string) => (e: unknown) => e instanceof AgentError && e.code === code;

describe('health', () => {
  test('reports version, uptime and pid', async () => {
    const h = await client.health();
    assert.match(h.version, /^\d+\.\d+\.\d+/);
    assert.equal(h.pid, agent.pid);
    assert.equal(typeof h.uptime_ms, 'number');
    assert.ok(h.uptime_ms >= 0);
    assert.equal(h.protocol, 1);
  });
});

describe('exec', () => {
  test('runs argv directly, without a shell', async () => {
    const c = collector();
    const r = await client.exec({ argv: ['echo', 'hello', '$HOME', 'a b'] }, c.handlers);
    assert.deepEqual(r.exitCode, 0);
    assert.equal(r.signal, null);
    assert.equal(r.timedOut, false);
    assert.equal(typeof r.durationMs, 'number');
    assert.equal(c.out(), 'hello $HOME a b\n');
    assert.equal(c.err(), '');
  });

  test('sh -c with separate stdout and stderr', async () => {
    const c = collector();
    const r = await client.exec({ argv: ['sh', '-c', 'echo out; echo err >&2; echo out2'] }, c.handlers);
    assert.equal(r.exitCode, 0);
    assert.equal(c.out(), 'out\nout2\n');
    assert.equal(c.err(), 'err\n');
  });

  test('environment: defaults, overrides, nothing inherited from the agent', async () => {
    const c = collector();
    const r = await client.exec({ argv: ['sh', '-c', 'env'], env: { FOO: 'bar baz', EMPTY: '' } }, c.handlers);
    assert.equal(r.exitCode, 0);
    const env = new Map(
      c
        .out()
        .trim()
        .split('\n')
        .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
    );
    assert.equal(env.get('FOO'), 'bar baz');
    assert.equal(env.get('EMPTY'), '');
    assert.equal(env.get('PATH'), '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
    const me = passwdEntry(process.getuid?.() ?? 0);
    assert.equal(env.get('HOME'), me?.home ?? '/');
    assert.equal(env.has('SB_TEST_AGENT_SECRET'), false, 'agent environment must not leak into execs');

    const c2 = collector();
    await client.exec({ argv: ['sh', '-c', 'echo $PATH'], env: { PATH: '/bin' } }, c2.handlers);
    assert.equal(c2.out(), '/bin\n');
  });

  test('cwd, and a clear error for a missing cwd', async () => {
    const dir = fs.mkdtempSync(path.join(agent.dir, 'cwd-'));
    const c = collector();
    await client.exec({ argv: ['pwd'], cwd: dir }, c.handlers);
    assert.equal(c.out().trim(), fs.realpathSync(dir));
    await assert.rejects(client.exec({ argv: ['pwd'], cwd: path.join(dir, 'nope') }), isAgentError('NOT_FOUND'));
    await assert.rejects(client.exec({ argv: ['pwd'], cwd: 'relative' }), isAgentError('INVALID_PATH'));
  });

  test('runs as another user from /etc/passwd', async (t) => {
    const nobody = passwdEntry('nobody');
    if (process.getuid?.() !== 0 || !nobody) {
      t.skip('needs root and a nobody user');
      return;
    }
    const c = collector();
    const r = await client.exec({ argv: ['sh', '-c', 'id -u; id -g; echo $HOME $USER'], user: 'nobody' }, c.handlers);
    assert.equal(r.exitCode, 0);
    assert.equal(c.out(), `${nobody.uid}\n${nobody.gid}\n${nobody.home} nobody\n`);
    const c2 = collector();
    await client.exec({ argv: ['id', '-u'], user: String(nobody.uid) }, c2.handlers);
    assert.equal(c2.out(), `${nobody.uid}\n`);
    await assert.rejects(client.exec({ argv: ['id'], user: 'no-such-user-xyz' }), isAgentError('INVALID_ARGUMENT'));
  });

  test('stdin from a string, a Buffer and an async iterable', async () => {
    const c = collector();
    await client.exec({ argv: ['cat'], stdin: 'hello stdin' }, c.handlers);
    assert.equal(c.out(), 'hello stdin');

    const data = crypto.randomBytes(3 * 1024 * 1024 + 17);
    const hash = crypto.createHash('sha256').update(data).digest('hex');
    const c2 = collector();
    const r = await client.exec({ argv: ['sha256sum'], stdin: data }, c2.handlers);
    assert.equal(r.exitCode, 0);
    assert.equal(c2.out().split(' ')[0], hash);

    async function* pieces() {
      for (let i = 0; i < 50; i++) yield Buffer.from(`line ${i}\n`);
    }
    const c3 = collector();
    await client.exec({ argv: ['wc', '-l'], stdin: pieces() }, c3.handlers);
    assert.equal(c3.out().trim(), '50');
  });

  test('without stdin the command reads EOF', async () => {
    const c = collector();
    const r = await client.exec({ argv: ['sh', '-c', 'cat; echo done'] }, c.handlers);
    assert.equal(r.exitCode, 0);
    assert.equal(c.out(), 'done\n');
  });

  test('stdin the command never reads does not hang the exec', async () => {
    const r = await client.exec({ argv: ['true'], stdin: crypto.randomBytes(2 * 1024 * 1024) });
    assert.equal(r.exitCode, 0);
  });

  test('exit codes and signals', async () => {
    assert.equal((await client.exec({ argv: ['sh', '-c', 'exit 42'] })).exitCode, 42);
    const r = await client.exec({ argv: ['sh', '-c', 'kill -TERM $$'] });
    assert.equal(r.exitCode, null);
    assert.equal(r.signal, 'SIGTERM');
    assert.equal(r.timedOut, false);
  });

  test('missing executable: exit 127 with a message on stderr', async () => {
    const c = collector();
    const r = await client.exec({ argv: ['definitely-not-a-command-xyz'] }, c.handlers);
    assert.equal(r.exitCode, 127);
    assert.match(c.err(), /definitely-not-a-command-xyz: command not found/);
    const c2 = collector();
    const r2 = await client.exec({ argv: ['/nonexistent/bin/x'] }, c2.handlers);
    assert.equal(r2.exitCode, 127);
    // not executable → 126
    const f = path.join(agent.dir, 'not-exec');
    fs.writeFileSync(f, 'data', { mode: 0o644 });
    const c3 = collector();
    const r3 = await client.exec({ argv: [f] }, c3.handlers);
    assert.equal(r3.exitCode, 126);
    assert.match(c3.err(), /Permission denied/);
    // the agent survived all of that
    assert.equal((await client.health()).pid, agent.pid);
  });

  test('timeout kills the whole process group, grandchildren included', { timeout: 60_000 }, async () => {
    const f = fifo('timeout-fifo');
    const c = collector();
    const r = await client.exec(
      { argv: ['sh', '-c', 'exec 3>"$F"; sleep 1000 & echo $!; wait'], env: { F: f.path }, timeoutMs: 1000 },
      c.handlers,
    );
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 'SIGKILL');
    assert.equal(r.exitCode, null);
    // the pid is printed only after sh opened the FIFO, so `closed` below cannot hang
    const grandchild = Number(c.out().trim());
    assert.ok(grandchild > 0, 'the script did not get going before the timeout');
    await f.closed; // every holder of the FIFO (sh and its grandchild sleep) is dying
    // Its files close before it becomes a zombie: on a loaded machine that gap is visible, so
    // give the exit a moment to finish (SIGKILL cannot be ignored; a live sleep never gets here).
    for (let i = 0; i < 200 && ![null, 'Z', 'X'].includes(procState(grandchild)); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok([null, 'Z', 'X'].includes(procState(grandchild)), `grandchild ${grandchild} still alive`);
  });

  test('abort signal kills the process group and rejects with ABORTED', { timeout: 60_000 }, async () => {
    const f = fifo('abort-fifo');
    const ac = new AbortController();
    const p = client.exec(
      { argv: ['sh', '-c', 'exec 3>"$F"; sleep 1000 & echo started; wait'], env: { F: f.path } },
      {
        signal: ac.signal,
        onStdout: (b) => {
          if (b.toString().includes('started')) ac.abort();
        },
      },
    );
    await assert.rejects(p, isAgentError('ABORTED'));
    await f.closed;
  });

  test('a throwing output handler fails the exec and kills the command', { timeout: 60_000 }, async () => {
    const f = fifo('handler-fifo');
    const p = client.exec(
      { argv: ['sh', '-c', 'exec 3>"$F"; echo first; exec sleep 1000'], env: { F: f.path } },
      {
        onStdout: () => {
          throw new Error('consumer broke');
        },
      },
    );
    await assert.rejects(p, /consumer broke/);
    await f.closed;
  });

  test('concurrent execs are multiplexed on one connection', async () => {
    // A blocks on stdin until B has finished: only possible if both run at once.
    let releaseA!: () => void;
    const gate = new Promise<void>((r) => {
      releaseA = r;
    });
    async function* stdinA() {
      await gate;
      yield Buffer.from('released\n');
    }
    const ca = collector();
    const a = client.exec({ argv: ['cat'], stdin: stdinA() }, ca.handlers);
    const cb = collector();
    const b = await client.exec({ argv: ['echo', 'b done'] }, cb.handlers);
    assert.equal(b.exitCode, 0);
    assert.equal(cb.out(), 'b done\n');
    releaseA();
    assert.equal((await a).exitCode, 0);
    assert.equal(ca.out(), 'released\n');

    // many at once, interleaved output, each gets exactly its own
    const runs = Array.from({ length: 12 }, (_, i) => {
      const c = collector();
      const p = client.exec(
        { argv: ['sh', '-c', 'for i in 1 2 3 4 5; do echo "$ID-$i"; sleep 0.01; done; echo "$ID-err" >&2'], env: { ID: `x${i}` } },
        c.handlers,
      );
      return { i, c, p };
    });
    for (const { i, c, p } of runs) {
      assert.equal((await p).exitCode, 0);
      assert.equal(c.out(), [1, 2, 3, 4, 5].map((n) => `x${i}-${n}\n`).join(''));
      assert.equal(c.err(), `x${i}-err\n`);
    }
  });

  test('flood: slow consumer back-pressures the producer; health still answers', { timeout: 60_000 }, async () => {
    const TOTAL = 50_000_000;
    const WINDOW = 256 * 1024;
    const sock = net.createConnection({ path: agent.socketPath });
    await new Promise<void>((res, rej) => {
      sock.once('connect', res);
      sock.once('error', rej);
    });
    let wireBytes = 0;
    sock.on('data', (d: Buffer) => {
      wireBytes += d.length;
    });
    const c = AgentClient.fromStream(sock);
    clients.push(c);

    const pattern = Buffer.from('y\n'.repeat(40_000));
    let consumed = 0;
    let chunks = 0;
    let stallChecked = false;
    let maxBacklog = 0;
    let stallRss = 0;
    const r = await c.exec(
      { argv: ['sh', '-c', `yes | head -c ${TOTAL}`], timeoutMs: 120_000 },
      {
        onStdout: async (chunk) => {
          const phase = consumed % 2;
          assert.ok(chunk.length <= 64 * 1024);
          assert.ok(pattern.subarray(phase, phase + chunk.length).equals(chunk), 'output corrupted');
          consumed += chunk.length;
          chunks++;
          if (chunks === 20 && !stallChecked) {
            stallChecked = true;
            // Stall this consumer for a while: health round trips on the same
            // connection must keep working, and what reaches us must stay bounded.
            for (let i = 0; i < 25; i++) {
              const h = await c.health();
              assert.equal(h.pid, agent.pid);
            }
            maxBacklog = wireBytes - consumed;
            stallRss = rssBytes(agent.pid);
          }
        },
      },
    );
    assert.equal(r.exitCode, 0);
    assert.equal(r.timedOut, false);
    assert.equal(consumed, TOTAL);
    assert.ok(stallChecked);
    // bytes on the wire beyond what the consumer took: at most one window of data
    // plus frame headers and the 25 health answers
    assert.ok(maxBacklog <= WINDOW + 16 * 1024, `backlog ${maxBacklog} exceeds the window`);
    assert.ok(stallRss < 16 * 1024 * 1024, `agent RSS ${stallRss} while stalled`);
    c.close();
  });

  test('flood with a timeout is killed and reported', async () => {
    let bytes = 0;
    const r = await client.exec(
      { argv: ['yes'], timeoutMs: 500 },
      {
        onStdout: (b) => {
          bytes += b.length;
        },
      },
    );
    assert.equal(r.timedOut, true);
    assert.equal(r.signal, 'SIGKILL');
    assert.ok(bytes > 0);
  });
});

describe('spawn', () => {
  test('started resolves with the pid of the command (frame order: protocol.test.ts)', async () => {
    const c = collector();
    const p = client.spawn({ argv: ['sh', '-c', 'echo "$$"'] }, c.handlers);
    const { pid } = await p.started;
    const r = await p.result;
    assert.equal(r.exitCode, 0);
    assert.equal(c.out(), `${pid}\n`);
  });

  test("stdin 'pipe': write() and closeStdin() feed a running command", async () => {
    const c = collector();
    const p = client.spawn({ argv: ['cat'], stdin: 'pipe' }, c.handlers);
    await p.started;
    await p.write(Buffer.from('one '));
    await p.write('two');
    p.closeStdin();
    const r = await p.result;
    assert.equal(r.exitCode, 0);
    assert.equal(c.out(), 'one two');
    await assert.rejects(p.write('late'), isAgentError('INVALID_ARGUMENT'));
  });

  test('write() without stdin pipe is INVALID_ARGUMENT; signal() reaches the process', async () => {
    const p = client.spawn({ argv: ['sleep', '30'] });
    await p.started;
    await assert.rejects(p.write('x'), isAgentError('INVALID_ARGUMENT'));
    p.signal('SIGTERM');
    const r = await p.result;
    assert.equal(r.signal, 'SIGTERM');
  });

  test('a request the agent rejects rejects started and result alike', async () => {
    const p = client.spawn({ argv: ['true'], cwd: '/no/such/dir/sb' });
    await assert.rejects(p.started, isAgentError('NOT_FOUND'));
    await assert.rejects(p.result, isAgentError('NOT_FOUND'));
  });
});

describe('connection lifecycle', () => {
  test('closing the connection mid-exec kills the exec process group', { timeout: 60_000 }, async () => {
    const c = await AgentClient.connect(agent.socketPath);
    clients.push(c);
    const f = fifo('close-fifo');
    let started!: () => void;
    const isStarted = new Promise<void>((r) => {
      started = r;
    });
    const p = c.exec(
      { argv: ['sh', '-c', 'exec 3>"$F"; sleep 1000 & echo started; wait'], env: { F: f.path } },
      {
        onStdout: (b) => {
          if (b.toString().includes('started')) started();
        },
      },
    );
    await isStarted;
    c.close();
    await assert.rejects(p, isAgentError('CHANNEL_CLOSED'));
    await c.closed;
    await f.closed;
    await assert.rejects(c.exec({ argv: ['true'] }), isAgentError('CHANNEL_CLOSED'));
    // other connections are unaffected, and a new connection works
    assert.equal((await client.health()).pid, agent.pid);
    const c2 = await AgentClient.connect(agent.socketPath);
    clients.push(c2);
    assert.equal((await c2.exec({ argv: ['true'] })).exitCode, 0);
    c2.close();
  });

  test('agent death rejects pending calls with CHANNEL_CLOSED; its commands die with it', { timeout: 60_000 }, async () => {
    const other = startAgent();
    const c = await AgentClient.connect(other.socketPath);
    clients.push(c);
    const f = makeFifo(other.dir, 'death-fifo');
    fifos.push(f);
    const p = c.exec({ argv: ['sh', '-c', 'exec sleep 1000 3>"$F"'], env: { F: f.path } });
    await f.opened; // the command is running
    other.proc.kill('SIGKILL');
    await assert.rejects(p, isAgentError('CHANNEL_CLOSED'));
    await c.closed;
    await f.closed; // parent-death signal: the exec did not outlive the agent
    await other.stop();
  });

  test('connect waits for the socket to appear', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-late-'));
    const sockPath = path.join(dir, 'late.sock');
    const pending = AgentClient.connect(sockPath, { timeoutMs: 20_000 });
    // the agent starts only after the client began connecting
    const proc = spawn(AGENT_BIN, ['--listen', sockPath], { stdio: 'ignore' });
    try {
      const c = await pending;
      const h = await c.health();
      assert.equal(h.pid, proc.pid);
      c.close();
    } finally {
      proc.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test('connect gives up with CONNECT_TIMEOUT', async () => {
    await assert.rejects(AgentClient.connect(path.join(agent.dir, 'never.sock'), { timeoutMs: 50 }), isAgentError('CONNECT_TIMEOUT'));
  });

  test('the listening socket is private (0600)', () => {
    assert.equal(fs.statSync(agent.socketPath).mode & 0o777, 0o600);
  });
});

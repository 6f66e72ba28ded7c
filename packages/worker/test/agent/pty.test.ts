import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';

import { AgentClient, type AgentProcess } from '../../src/agent/AgentClient.js';
import { AgentError } from '../../src/agent/AgentError.js';
import { procState, type RunningAgent, startAgent, stopAllAgents } from './helpers.js';

let agent: RunningAgent;
let client: AgentClient;
/** Process groups a test started; killed after each test, whatever happened. */
const groups = new Set<number>();
const procs: AgentProcess[] = [];

before(async () => {
  agent = startAgent();
  client = await AgentClient.connect(agent.socketPath, { timeoutMs: 10_000 });
});

afterEach(() => {
  for (const p of procs.splice(0)) p.kill();
  for (const pg of groups) {
    try {
      process.kill(-pg, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  groups.clear();
});

after(async () => {
  client.close();
  await stopAllAgents();
});

/** Terminal output collected as text, with a wait for a pattern (an event, not a sleep). */
function terminal() {
  let text = '';
  let waiters: Array<() => void> = [];
  return {
    onStdout: (b: Buffer) => {
      text += b.toString();
      const w = waiters;
      waiters = [];
      for (const f of w) f();
    },
    text: () => text,
    /** Resolves with the match once `re` matches the output after `from` (an offset into it). */
    async waitFor(re: RegExp, from = 0, timeoutMs = 8000): Promise<RegExpExecArray> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const m = re.exec(text.slice(from));
        if (m) return m;
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no ${re} in the terminal output after ${timeoutMs} ms: ${JSON.stringify(text)}`);
        await new Promise<void>((r) => {
          const timer = setTimeout(r, left);
          waiters.push(() => {
            clearTimeout(timer);
            r();
          });
        });
      }
    },
  };
}

function spawnTracked(...args: Parameters<AgentClient['spawn']>): AgentProcess {
  const p = client.spawn(...args);
  procs.push(p);
  p.started.then(
    ({ pid }) => groups.add(pid),
    () => {},
  );
  return p;
}

describe('pty exec', () => {
  test('the command runs on a terminal: tty names a /dev/pts device, TERM is set', async () => {
    const t = terminal();
    const p = spawnTracked({ argv: ['sh', '-c', 'tty; echo "term=$TERM"'], pty: { cols: 80, rows: 24 } }, t);
    const r = await p.result;
    assert.equal(r.exitCode, 0, t.text());
    assert.match(t.text(), /^\/dev\/pts\/\d+\r\n/);
    assert.match(t.text(), /term=xterm-256color\r\n/);
  });

  test('the request env may override TERM', async () => {
    const t = terminal();
    const p = spawnTracked({ argv: ['sh', '-c', 'echo "term=$TERM"'], env: { TERM: 'dumb' }, pty: { cols: 80, rows: 24 } }, t);
    await p.result;
    assert.match(t.text(), /term=dumb\r\n/);
  });

  test('stty size reports the requested rows and columns; stderr goes to the terminal too', async () => {
    const t = terminal();
    let stderr = '';
    const p = spawnTracked(
      { argv: ['sh', '-c', 'stty size; echo oops >&2'], pty: { cols: 132, rows: 43 } },
      {
        onStdout: t.onStdout,
        onStderr: (b) => {
          stderr += b.toString();
        },
      },
    );
    const r = await p.result;
    assert.equal(r.exitCode, 0);
    assert.equal(t.text(), '43 132\r\noops\r\n');
    assert.equal(stderr, '');
  });

  test('an interactive shell: commands written to stdin, resize changes stty size', async () => {
    const t = terminal();
    const p = spawnTracked({ argv: ['sh', '-i'], env: { PS1: '$ ' }, pty: { cols: 80, rows: 24 } }, t);
    const { pid } = await p.started;
    assert.ok(pid > 0);
    await t.waitFor(/\$ $/); // the first prompt
    await p.write('stty size\n');
    await t.waitFor(/24 80\r\n/);
    const mark = t.text().length;
    p.resize(100, 30);
    await p.write('stty size\n');
    await t.waitFor(/30 100\r\n/, mark);
    await p.write('exit 7\n');
    const r = await p.result;
    assert.equal(r.exitCode, 7);
  });

  test('closeStdin sends ^D: cat sees end of input and exits', async () => {
    const t = terminal();
    const p = spawnTracked({ argv: ['cat'], pty: { cols: 80, rows: 24 } }, t);
    await p.write('hello\n');
    await t.waitFor(/hello\r\nhello\r\n/); // the terminal's echo, then cat's copy
    p.closeStdin();
    const r = await p.result;
    assert.equal(r.exitCode, 0);
    await assert.rejects(p.write('late'), (e: unknown) => e instanceof AgentError && e.code === 'INVALID_ARGUMENT');
  });

  test('signal() goes to the foreground job, like ^C: sleep is interrupted, the shell survives', async () => {
    const t = terminal();
    const p = spawnTracked({ argv: ['sh', '-i'], env: { PS1: '$ ' }, pty: { cols: 80, rows: 24 } }, t);
    await t.waitFor(/\$ $/);
    // the quotes keep the echoed command line from matching "ready"
    await p.write(`sh -c 'echo rea""dy; exec sleep 100'\n`);
    await t.waitFor(/ready\r\n/);
    const mark = t.text().length;
    p.signal('SIGINT');
    await t.waitFor(/\$ $/, mark); // sleep died, the shell prompts again
    await p.write('echo "rc=$?"\n');
    await t.waitFor(/rc=130\r\n/, mark);
    await p.write('exit 0\n');
    const r = await p.result;
    assert.equal(r.exitCode, 0);
    assert.equal(r.signal, null);
  });

  test('RESULT does not wait for a process that keeps the terminal open after the leader exited', async () => {
    const t = terminal();
    // the background sleep ignores the SIGHUP the leader's exit sends and keeps the slave open
    const p = spawnTracked({ argv: ['sh', '-c', `trap '' HUP; sleep 60 & echo "bg=$!"`], pty: { cols: 80, rows: 24 } }, t);
    const r = await p.result;
    assert.equal(r.exitCode, 0);
    const m = /bg=(\d+)/.exec(t.text());
    assert.ok(m, t.text());
    const bg = Number(m[1]);
    assert.notEqual(procState(bg), null, 'the background process is still running');
    assert.notEqual(procState(bg), 'Z');
  });

  test('kill() ends an interactive shell with SIGKILL', async () => {
    const t = terminal();
    const p = spawnTracked({ argv: ['sh', '-i'], pty: { cols: 80, rows: 24 } }, t);
    await p.started;
    p.kill();
    const r = await p.result;
    assert.equal(r.signal, 'SIGKILL');
  });

  test('invalid pty sizes are INVALID_ARGUMENT and nothing starts', async () => {
    for (const pty of [
      { cols: 0, rows: 24 },
      { cols: 80, rows: 1001 },
      { cols: 80.5, rows: 24 },
    ]) {
      const p = client.spawn({ argv: ['true'], pty });
      await assert.rejects(p.started, (e: unknown) => e instanceof AgentError && e.code === 'INVALID_ARGUMENT');
      await assert.rejects(p.result, (e: unknown) => e instanceof AgentError && e.code === 'INVALID_ARGUMENT');
    }
  });

  test('a pty exec without credit stops reading: the command blocks, agent memory stays flat', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    let bytes = 0;
    let first!: () => void;
    const gotFirst = new Promise<void>((r) => {
      first = r;
    });
    const p = spawnTracked(
      { argv: ['sh', '-c', 'yes 0123456789012345678901234567890123456789 | head -c 50000000'], pty: { cols: 80, rows: 24 } },
      {
        onStdout: async (b) => {
          bytes += b.length;
          first();
          await gate; // hold every chunk: no credit goes back
        },
      },
    );
    const { pid } = await p.started;
    await gotFirst;
    const before = (await client.health()).rss_bytes ?? 0;
    // the agent has sent at most one window (256 KiB) and stopped reading the master
    const h2 = await client.health();
    assert.ok(bytes <= 256 * 1024, `received ${bytes} bytes without granting credit`);
    assert.ok((h2.rss_bytes ?? 0) - before < 4 * 1024 * 1024);
    assert.notEqual(procState(pid), null);
    release();
    p.kill();
    const r = await p.result;
    assert.ok(r.signal === 'SIGKILL' || r.exitCode !== null);
  });
});

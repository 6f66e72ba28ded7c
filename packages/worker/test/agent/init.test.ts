/**
 * PID-1 duties, exercised for real in fresh PID + network namespaces (unshare). Skipped
 * when not root or unshare(1) is unavailable.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { AgentClient } from '../../src/agent/AgentClient.js';
import { AGENT_BIN, buildAgent, collector, type Fifo, makeFifo } from './helpers.js';

function canUnshare(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('unshare', ['--pid', '--fork', '--mount-proc', '--net', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const available = canUnshare();
let dir: string;
let proc: ChildProcess | undefined;
let exited: Promise<unknown> | undefined;
let client: AgentClient | undefined;
const fifos: Fifo[] = [];

before(() => {
  if (!available) return;
  buildAgent();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sb-init-test-'));
  proc = spawn('unshare', ['--pid', '--fork', '--mount-proc', '--net', AGENT_BIN, '--listen', path.join(dir, 'agent.sock')], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  exited = once(proc, 'exit');
});

after(async () => {
  client?.close();
  for (const f of fifos) f.release();
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    const agentPid = hostPidOfAgent();
    if (agentPid) process.kill(agentPid, 'SIGKILL');
    proc.kill('SIGKILL');
    await exited;
  }
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** The agent's pid as seen from here: the only child of the unshare process. */
function hostPidOfAgent(): number | null {
  if (!proc?.pid) return null;
  try {
    const kids = fs.readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, 'utf8').trim();
    return kids ? Number(kids.split(' ')[0]) : null;
  } catch {
    return null;
  }
}

test('as PID 1: health, loopback up, orphans reaped, SIGTERM ends everything', {
  skip: !available && 'needs root and unshare',
  timeout: 60_000,
}, async () => {
  client = await AgentClient.connect(path.join(dir, 'agent.sock'), { timeoutMs: 10_000 });
  const h = await client.health();
  assert.equal(h.pid, 1);

  // loopback was brought up by the agent in its brand-new network namespace
  const hasIp = (await client.exec({ argv: ['sh', '-c', 'command -v ip'] })).exitCode === 0;
  if (hasIp) {
    const c = collector();
    await client.exec({ argv: ['ip', '-o', 'link', 'show', 'lo'] }, c.handlers);
    assert.match(c.out(), /<[^>]*\bUP\b[^>]*>/);
  }

  // an orphan (its parent exits at once) is re-parented to PID 1 and must be reaped
  const orphan = makeFifo(dir, 'orphan');
  fifos.push(orphan);
  const r = await client.exec({ argv: ['sh', '-c', 'exec 3>"$F"; (sleep 0.2) & exit 0'], env: { F: orphan.path } });
  assert.equal(r.exitCode, 0);
  await orphan.opened;
  await orphan.closed; // the orphan has exited
  let zombies = '';
  for (let attempt = 0; attempt < 50; attempt++) {
    const c = collector();
    await client.exec({ argv: ['sh', '-c', 'for f in /proc/[0-9]*/stat; do read -r l < "$f" && echo "$l"; done 2>/dev/null'] }, c.handlers);
    zombies = c
      .out()
      .split('\n')
      .filter((l) => / Z /.test(l.slice(l.lastIndexOf(')'))))
      .join('\n');
    if (!zombies) break;
  }
  assert.equal(zombies, '', 'zombies left unreaped');

  // SIGTERM to PID 1: every process in the bunker is terminated, then the agent exits 0
  const victim = makeFifo(dir, 'victim');
  fifos.push(victim);
  const running = client.exec({ argv: ['sh', '-c', 'exec 3>"$F"; sleep 1000 & wait'], env: { F: victim.path } });
  running.catch(() => {});
  await victim.opened;
  const agentPid = hostPidOfAgent();
  assert.ok(agentPid);
  process.kill(agentPid, 'SIGTERM');
  await victim.closed;
  await client.closed;
  await exited;
  assert.equal(proc?.exitCode, 0);
});

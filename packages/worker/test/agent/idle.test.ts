/**
 * An agent that has gone quiet gives back the heap its requests touched (IDLE_TRIM_MS in
 * main.c): thousands of idle bunkers are mostly their agents.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { AgentClient } from '../../src/agent/AgentClient.js';
import { startAgent, stopAllAgents } from './helpers.js';

after(stopAllAgents);

/** Resident KiB of the agent's stack mapping. */
function stackKb(pid: number): number {
  const smaps = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8');
  return Number(/ \[stack\]\n(?:.*\n)*?Rss:\s+(\d+) kB/.exec(smaps)?.[1] ?? Number.NaN);
}

/** Resident anonymous KiB of the agent (heap, buffers mmapped by malloc, stack, data). */
function anonKb(pid: number): number {
  return Number(/RssAnon:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? Number.NaN);
}

test('after a quiet spell the agent returns the heap its requests grew', async () => {
  const agent = startAgent();
  let client: AgentClient | undefined;
  for (let i = 0; !client; i++) {
    client = await AgentClient.connect(agent.socketPath).catch(async (e) => {
      if (i > 200) throw e;
      await sleep(25); // the socket appears once the agent listens; no event to await across processes
      return undefined;
    });
  }
  try {
    const idle = anonKb(agent.pid);
    const idleStack = stackKb(agent.pid);
    // Many streams in flight at once and a large stdout grow the heap well past its idle size.
    await Promise.all(
      Array.from({ length: 32 }, () =>
        client.exec({ argv: ['/bin/sh', '-c', 'head -c 300000 /dev/zero'] }).then((r) => assert.equal(r.exitCode, 0)),
      ),
    );
    const busy = anonKb(agent.pid);
    assert.ok(busy >= idle + 16, `the load grew the agent from ${idle} KiB to ${busy} KiB resident`);
    const busyStack = stackKb(agent.pid);
    assert.ok(busyStack > idleStack, `the load deepened the agent's stack from ${idleStack} KiB to ${busyStack} KiB resident`);
    // Polled: the trim is the agent's own timer, nothing announces it. "Back" means most of the
    // growth returned (a few pages of malloc's bookkeeping may stay), and the stack pages the
    // load touched below the idle loop's frame all of them.
    const back = idle + (busy - idle) / 4;
    const deadline = Date.now() + 15_000;
    let now = anonKb(agent.pid);
    let stack = stackKb(agent.pid);
    while ((now > back || stack > idleStack) && Date.now() < deadline) {
      await sleep(100);
      now = anonKb(agent.pid);
      stack = stackKb(agent.pid);
    }
    assert.ok(now <= back, `${now} KiB resident after the quiet spell (${idle} idle, ${busy} busy)`);
    assert.ok(stack <= idleStack, `${stack} KiB of stack resident after the quiet spell (${idleStack} idle, ${busyStack} busy)`);
    // and it still serves
    assert.equal((await client.exec({ argv: ['/bin/true'] })).exitCode, 0);
  } finally {
    client.close();
    await agent.stop();
  }
});

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
    // Many streams in flight at once and a large stdout grow the heap well past its idle size.
    await Promise.all(
      Array.from({ length: 32 }, () =>
        client.exec({ argv: ['/bin/sh', '-c', 'head -c 300000 /dev/zero'] }).then((r) => assert.equal(r.exitCode, 0)),
      ),
    );
    const busy = anonKb(agent.pid);
    assert.ok(busy >= idle + 16, `the load grew the agent from ${idle} KiB to ${busy} KiB resident`);
    // Polled: the trim is the agent's own timer, nothing announces it. The stack pages the
    // load touched stay, so "back" means most of the growth returned, not all of it.
    const back = idle + (busy - idle) / 4;
    const deadline = Date.now() + 15_000;
    let now = anonKb(agent.pid);
    while (now > back && Date.now() < deadline) {
      await sleep(100);
      now = anonKb(agent.pid);
    }
    assert.ok(now <= back, `${now} KiB resident after the quiet spell (${idle} idle, ${busy} busy)`);
    // and it still serves
    assert.equal((await client.exec({ argv: ['/bin/true'] })).exitCode, 0);
  } finally {
    client.close();
    await agent.stop();
  }
});

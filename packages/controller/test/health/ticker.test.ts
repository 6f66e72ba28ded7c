/** Background jobs through an outage: paused (logged once), resumed by themselves. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError } from '@scaibunker/core';
import { Ticker } from '../../src/jobs/Ticker.js';
import type { JobLeaseStore } from '../../src/store/JobLeaseStore.js';

test('a job whose store is down pauses, logs that once, and resumes when the store answers', async () => {
  let down = true;
  let ran = 0;
  const leases = {
    claim: async () => {
      if (down) throw new ApiError('STORE_UNAVAILABLE', 'the database cannot be reached right now');
      return true;
    },
    release: async () => undefined,
  } as unknown as JobLeaseStore;
  const logs: string[] = [];
  const ticker = new Ticker(
    'sweeper',
    60_000,
    async () => {
      ran++;
    },
    { store: leases, holder: 'ctl_a' },
    (m) => logs.push(m),
  );
  for (let i = 0; i < 3; i++) assert.equal(await ticker.tick(), false);
  assert.equal(ran, 0);
  assert.deepEqual(logs, ['[sweeper] paused: STORE_UNAVAILABLE (the database cannot be reached right now)']);
  down = false;
  assert.equal(await ticker.tick(), true);
  assert.equal(ran, 1);
  assert.deepEqual(logs.slice(1), ['[sweeper] resumed (STORE_UNAVAILABLE is over)']);
  await ticker.tick();
  assert.equal(logs.length, 2, 'nothing more to say once running');
  await ticker.stop();
});

test('any other failure is still logged every time', async () => {
  const logs: string[] = [];
  const ticker = new Ticker(
    'usage',
    60_000,
    async () => {
      throw new Error('boom');
    },
    undefined,
    (m) => logs.push(m),
  );
  await ticker.tick();
  await ticker.tick();
  assert.deepEqual(logs, ['[usage] tick failed: boom', '[usage] tick failed: boom']);
  await ticker.stop();
});

test('stop releases the lease only after a renewal in flight has landed', async () => {
  const events: string[] = [];
  let renewalLanded!: () => void;
  let claims = 0;
  let jobEnd!: () => void;
  let renewalSent!: () => void;
  const renewalStarted = new Promise<void>((r) => {
    renewalSent = r;
  });
  const leases = {
    claim: async () => {
      claims++;
      if (claims === 1) return true;
      // A renewal: still on its way to the database when the job ends.
      events.push('renewal sent');
      renewalSent();
      await new Promise<void>((r) => {
        renewalLanded = r;
      });
      events.push('renewal landed');
      return true;
    },
    release: async () => {
      events.push('release');
    },
  } as unknown as JobLeaseStore;
  // A 30 ms interval renews every 15 ms while the tick runs.
  const ticker = new Ticker(
    'sweeper',
    30,
    () =>
      new Promise<void>((r) => {
        jobEnd = r;
      }),
    { store: leases, holder: 'ctl_a' },
  );
  const tick = ticker.tick();
  await renewalStarted;
  jobEnd();
  const stopped = ticker.stop();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(events, ['renewal sent'], 'no release while the renewal is in flight');
  renewalLanded();
  await stopped;
  assert.equal(await tick, true);
  assert.deepEqual(events, ['renewal sent', 'renewal landed', 'release']);
});

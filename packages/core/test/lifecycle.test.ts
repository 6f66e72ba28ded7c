import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError, assertTransition, BUNKER_STATES, canTransition, TERMINAL_STATES } from '../src/index.js';

test('terminal states go nowhere', () => {
  for (const from of TERMINAL_STATES) for (const to of BUNKER_STATES) assert.equal(canTransition(from, to), false, `${from} → ${to}`);
});

test('every non-terminal state may fail', () => {
  for (const from of BUNKER_STATES.filter((s) => !TERMINAL_STATES.has(s))) assert.equal(canTransition(from, 'failed'), true, from);
});

test('the documented happy path is allowed, shortcuts are not', () => {
  for (const [from, to] of [
    ['pending', 'provisioning'],
    ['provisioning', 'running'],
    ['running', 'paused'],
    ['paused', 'running'],
    ['running', 'snapshotting'],
    ['snapshotting', 'running'],
    ['running', 'terminated'],
  ] as const)
    assert.equal(canTransition(from, to), true, `${from} → ${to}`);
  for (const [from, to] of [
    ['pending', 'running'],
    ['running', 'running'],
    ['paused', 'snapshotting'],
    ['running', 'provisioning'],
    ['paused', 'paused'],
  ] as const)
    assert.equal(canTransition(from, to), false, `${from} → ${to}`);
});

test('an illegal move throws BUNKER_INVALID_TRANSITION (409) naming both states', () => {
  assert.throws(
    () => assertTransition('bk_x', 'terminated', 'running'),
    (e: unknown) => e instanceof ApiError && e.code === 'BUNKER_INVALID_TRANSITION' && e.status === 409 && e.details.from === 'terminated',
  );
});

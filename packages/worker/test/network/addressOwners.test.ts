import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AddressOwners } from '../../src/network/audit/AddressOwners.js';

test('a flow belongs to whoever held the address when it began, even after the address moved on', () => {
  const owners = new AddressOwners();
  owners.attached('10.200.0.2', 'bk_old', 1_000);
  owners.detached('10.200.0.2', 'bk_old', 5_000);
  owners.attached('10.200.0.2', 'bk_new', 6_000);
  assert.equal(owners.ownerAt('10.200.0.2', 2_000), 'bk_old', 'reported late, after bk_old is gone');
  assert.equal(owners.ownerAt('10.200.0.2', 7_000), 'bk_new');
  assert.equal(owners.ownerAt('10.200.0.2', null), 'bk_new', 'no start time: the current holder');
  assert.equal(owners.ownerAt('10.200.0.9', 7_000), undefined);
});

test('a released address with no holder still answers for its last bunker, until it is pruned', () => {
  const owners = new AddressOwners();
  owners.attached('10.200.0.6', 'bk_a', 1_000);
  owners.detached('10.200.0.6', 'bk_a', 2_000);
  assert.equal(owners.ownerAt('10.200.0.6', 1_500), 'bk_a');
  assert.equal(owners.ownerAt('10.200.0.6', null), 'bk_a');
  // Any later release prunes spans released more than 15 minutes before it.
  owners.attached('10.200.0.10', 'bk_b', 3_000);
  owners.detached('10.200.0.10', 'bk_b', 2_000 + 16 * 60 * 1_000_000);
  assert.equal(owners.ownerAt('10.200.0.6', 1_500), undefined);
});

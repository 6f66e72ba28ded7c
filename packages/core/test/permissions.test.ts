import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hasPermission, NETWORK_PROFILE_PERMISSIONS, PERMISSIONS } from '../src/index.js';

test('a key holds what it lists', () => {
  assert.equal(hasPermission(['scaibunker:read'], 'scaibunker:read'), true);
  assert.equal(hasPermission(['scaibunker:read'], 'scaibunker:execute'), false);
  assert.equal(hasPermission([], 'scaibunker:read'), false);
});

test('tenant admins hold the tenant-level permissions but not platform admin', () => {
  for (const p of ['scaibunker:read', 'scaibunker:create', 'scaibunker:execute'] as const)
    assert.equal(hasPermission(['scaibunker:admin:tenant'], p), true);
  assert.equal(hasPermission(['scaibunker:admin:tenant'], 'scaibunker:admin'), false);
});

test('platform admins hold everything; nothing implies platform admin', () => {
  assert.equal(hasPermission(['scaibunker:admin'], 'scaibunker:admin:tenant'), true);
  assert.equal(hasPermission(['scaibunker:admin'], 'scaibunker:execute'), true);
  assert.equal(
    hasPermission(['scaibunker:read', 'scaibunker:create', 'scaibunker:execute', 'scaibunker:admin:tenant'], 'scaibunker:admin'),
    false,
  );
});

test('each network profile but isolated has its own permission; admins hold them all, creators none', () => {
  assert.equal(NETWORK_PROFILE_PERMISSIONS.isolated, undefined);
  for (const profile of ['registry', 'allowlisted', 'unrestricted', 'transit'] as const) {
    const needed = NETWORK_PROFILE_PERMISSIONS[profile];
    assert.equal(needed, `scaibunker:network:${profile}`);
    assert.ok(PERMISSIONS.includes(needed));
    assert.equal(hasPermission([needed], needed), true);
    assert.equal(hasPermission(['scaibunker:create', 'scaibunker:execute', 'scaibunker:read'], needed), false);
    assert.equal(hasPermission(['scaibunker:admin:tenant'], needed), true);
    assert.equal(hasPermission(['scaibunker:admin'], needed), true);
  }
  assert.equal(hasPermission(['scaibunker:network:unrestricted'], 'scaibunker:network:registry'), false, 'no profile implies another');
  assert.equal(hasPermission(['scaibunker:network:unrestricted'], 'scaibunker:create'), false);
});

test('the audit trail needs scaibunker:audit:read: tenant and platform admins hold it, readers do not', () => {
  assert.ok(PERMISSIONS.includes('scaibunker:audit:read'));
  assert.equal(hasPermission(['scaibunker:audit:read'], 'scaibunker:audit:read'), true);
  assert.equal(hasPermission(['scaibunker:read', 'scaibunker:create', 'scaibunker:execute'], 'scaibunker:audit:read'), false);
  assert.equal(hasPermission(['scaibunker:admin:tenant'], 'scaibunker:audit:read'), true);
  assert.equal(hasPermission(['scaibunker:admin'], 'scaibunker:audit:read'), true);
  assert.equal(hasPermission(['scaibunker:audit:read'], 'scaibunker:read'), false);
});

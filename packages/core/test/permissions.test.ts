import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hasPermission } from '../src/index.js';

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

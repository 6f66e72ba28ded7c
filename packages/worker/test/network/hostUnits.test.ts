/**
 * Pure parts of the per-bunker host network plumbing: address allocation, names, the nft
 * ruleset text and the state files. No root needed; the kernel side is in hostNetworks.test.ts.
 *
 *   node --import tsx --test packages/worker/test/network/hostUnits.test.ts
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { BunkerNames } from '../../src/network/host/BunkerNames.js';
import { BunkerNetworks } from '../../src/network/host/BunkerNetworks.js';
import { NetworkStateStore } from '../../src/network/host/NetworkStateStore.js';
import { bunkerRuleset, mergeCidrs } from '../../src/network/host/nftRuleset.js';
import { SubnetAllocator } from '../../src/network/host/SubnetAllocator.js';
import { tbfArgs } from '../../src/network/host/trafficShaping.js';
import type { BunkerNetwork } from '../../src/network/host/types.js';

const dirs: string[] = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'sbnet-unit-'));
  dirs.push(d);
  return d;
}

const sample: BunkerNetwork = {
  bunkerId: 'b1',
  netnsName: 'sbn-0123456789',
  netnsPath: '/run/netns/sbn-0123456789',
  hostIf: 'sbv0123456789',
  address: '10.200.0.2',
  gateway: '10.200.0.1',
  prefixLen: 30,
  table: 'sb_0123456789',
  profile: 'registry',
  bandwidthMbit: 100,
};

describe('SubnetAllocator', () => {
  test('hands out the lowest free /30 and maps addresses back to slots', () => {
    const a = new SubnetAllocator('10.200.0.0/16');
    assert.equal(a.capacity, 16384);
    assert.deepEqual(a.allocate(new Set()), { gateway: '10.200.0.1', address: '10.200.0.2', prefixLen: 30 });
    assert.deepEqual(a.allocate(new Set([0, 1, 3])), { gateway: '10.200.0.9', address: '10.200.0.10', prefixLen: 30 });
    assert.equal(a.slotOf('10.200.0.10'), 2);
    assert.equal(a.slotOf('10.200.255.254'), 16383);
    assert.equal(a.slotOf('10.201.0.2'), undefined);
  });

  test('refuses exhausted pools and malformed subnets', () => {
    const a = new SubnetAllocator('10.9.0.0/30');
    assert.throws(() => a.allocate(new Set([0])), /exhausted/);
    assert.throws(() => new SubnetAllocator('10.9.0.1/24'), /host bits/);
    assert.throws(() => new SubnetAllocator('10.9.0.0/31'), /smaller than/);
    assert.throws(() => new SubnetAllocator('fd00::/64'), /IPv4/);
  });
});

describe('BunkerNames', () => {
  test('every interface name fits the 15-byte limit and round-trips to its key', () => {
    for (const prefix of ['sb', 'abcd']) {
      const n = new BunkerNames(prefix);
      const key = n.key('a-rather-long-bunker-identifier-0123456789');
      assert.match(key, /^[0-9a-f]{10}$/);
      assert.ok(n.hostIf(key).length <= 15 && n.ifb(key).length <= 15);
      assert.equal(n.keyOfLink(n.hostIf(key)), key);
      assert.equal(n.keyOfLink(n.ifb(key)), key);
      assert.equal(n.keyOfNetns(n.netns(key)), key);
      assert.equal(n.keyOfTable(n.table(key)), key);
    }
    const sb = new BunkerNames('sb');
    // Another prefix's objects are never mistaken for ours (reconcile deletes what matches).
    assert.equal(sb.keyOfLink('sbtv0123456789'), undefined);
    assert.equal(sb.keyOfTable('sbt_0123456789'), undefined);
    assert.throws(() => new BunkerNames('SB'), /lowercase/);
  });
});

describe('nft ruleset', () => {
  const opts = { dnsPort: 5300, maxConnections: 512, blocked: ['10.0.0.7', '203.0.113.9', '10.200.0.0/16', 'fd00::1'] };

  test('registry and allowlisted accept only allow4 on tcp 80/443 and reject the rest', () => {
    for (const profile of ['registry', 'allowlisted'] as const) {
      const text = bunkerRuleset({ ...sample, profile }, opts);
      assert.match(text, /forward iifname "sbv0123456789" ip daddr @allow4 tcp dport \{ 80, 443 \} accept/);
      assert.match(text, /forward iifname "sbv0123456789" meta l4proto tcp reject with tcp reset/);
      assert.match(text, /forward iifname "sbv0123456789" reject with icmpx type admin-prohibited/);
      assert.doesNotMatch(text, /forward iifname "sbv0123456789" accept/);
    }
  });

  test('every profile: DNS DNAT, input limited to the responder, anti-spoof, no IPv6, cap, masquerade', () => {
    for (const profile of ['registry', 'allowlisted', 'unrestricted'] as const) {
      const text = bunkerRuleset({ ...sample, profile }, opts);
      assert.match(text, /dns iifname "sbv0123456789" meta l4proto \{ tcp, udp \} th dport 53 dnat ip to 10\.200\.0\.1:5300/);
      assert.match(
        text,
        /input iifname "sbv0123456789" ip daddr 10\.200\.0\.1 meta l4proto \{ tcp, udp \} th dport 5300 accept\n.*input iifname "sbv0123456789" drop/,
      );
      assert.match(text, /guard iifname "sbv0123456789" ip saddr != 10\.200\.0\.2 drop/);
      assert.match(text, /guard iifname "sbv0123456789" meta nfproto ipv6 drop/);
      assert.match(text, /ct count over 512 \} reject/);
      assert.match(text, /forward oifname "sbv0123456789" drop/);
      assert.match(text, /post ip saddr 10\.200\.0\.2 oifname != "sbv0123456789" masquerade/);
      // Re-apply flushes chains and keeps the sets (and the responder's elements) instead of deleting the table.
      assert.doesNotMatch(text, /delete table/);
    }
  });

  test('unrestricted blocks private ranges, the pool and protected addresses without overlapping intervals', () => {
    const text = bunkerRuleset({ ...sample, profile: 'unrestricted' }, opts);
    const m = /ip daddr \{ ([^}]+) \} reject/.exec(text);
    assert.ok(m);
    const blocked = m[1]!.split(', ');
    for (const r of ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '127.0.0.0/8', '169.254.0.0/16', '203.0.113.9'])
      assert.ok(blocked.includes(r), r);
    assert.ok(!blocked.includes('10.0.0.7') && !blocked.includes('10.200.0.0/16'), 'nested blocks merged');
    assert.match(text, /forward iifname "sbv0123456789" accept/);
  });

  test('mergeCidrs drops nested blocks and duplicates', () => {
    assert.deepEqual(mergeCidrs(['10.0.0.0/8', '10.1.2.3', '10.1.2.3', '192.0.2.0/24', '192.0.2.0/25', '1.2.3.4/32']), [
      '1.2.3.4',
      '10.0.0.0/8',
      '192.0.2.0/24',
    ]);
  });

  test('tbf burst covers one 4 ms tick of the rate and never less than 64 KiB', () => {
    assert.deepEqual(tbfArgs(20), ['tbf', 'rate', '20mbit', 'burst', '65536', 'latency', '50ms']);
    assert.equal(tbfArgs(10_000)[4], String(10_000_000_000 / 8 / 250));
  });
});

describe('NetworkStateStore', () => {
  test('writes atomically, reads back, reports unreadable files and sweeps temporaries', () => {
    const dir = tempDir();
    const store = new NetworkStateStore(dir);
    store.save('0123456789', sample);
    assert.deepEqual(readdirSync(dir), ['0123456789.json']);
    writeFileSync(join(dir, 'abcdefabcd.json'), '{"torn');
    writeFileSync(join(dir, 'abcdefabcd.json.1234.tmp'), '{}');
    const { networks, unreadable } = store.loadAll();
    assert.deepEqual(networks.get('0123456789'), sample);
    assert.deepEqual(unreadable, ['abcdefabcd']);
    store.sweepTemporaries();
    assert.deepEqual(readdirSync(dir).sort(), ['0123456789.json', 'abcdefabcd.json']);
    store.remove('0123456789');
    store.remove('0123456789');
    assert.deepEqual(readdirSync(dir), ['abcdefabcd.json']);
  });
});

describe('BunkerNetworks validation', () => {
  test('rejects bad options and plans before touching the host', async () => {
    const base = { stateDir: tempDir(), subnet: '10.200.0.0/16', dnsPort: 5300, protectedAddresses: [] };
    assert.throws(() => new BunkerNetworks({ ...base, dnsPort: 0 }), /dnsPort/);
    assert.throws(() => new BunkerNetworks({ ...base, protectedAddresses: ['nope'] }), /protected/);
    assert.throws(() => new BunkerNetworks({ ...base, maxConnections: 0 }), /maxConnections/);
    const nets = new BunkerNetworks(base);
    await assert.rejects(nets.setup('x', { profile: 'isolated' as never, bandwidthMbit: 10 }), /no host plumbing/);
    await assert.rejects(nets.setup('x', { profile: 'registry', bandwidthMbit: 0 }), /bandwidthMbit/);
    await assert.rejects(nets.setup('x', { profile: 'registry', bandwidthMbit: 10_001 }), /bandwidthMbit/);
    assert.deepEqual(nets.list(), []);
  });
});

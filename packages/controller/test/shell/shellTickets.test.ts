import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiError } from '@scaibunker/core';
import type { Principal } from '../../src/auth/Principal.js';
import { InProcessTicketLedger } from '../../src/shell/InProcessTicketLedger.js';
import { ShellTickets, TICKET_TTL_MS } from '../../src/shell/ShellTickets.js';

const alice: Principal = {
  kind: 'api_key',
  tenantId: 'tn_alice',
  actor: 'key:ak_1',
  permissions: ['scaibunker:execute'],
  userId: 'u1',
  groups: [],
};

async function refused(p: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => err instanceof ApiError && err.code === 'UNAUTHENTICATED' && message.test(err.message));
}

test('a ticket redeems once, as its caller, for its bunker only', async () => {
  const tickets = ShellTickets.fromWorkerToken('worker-token', new InProcessTicketLedger());
  const { ticket, expires_at } = tickets.mint(alice, 'bk_1');
  assert.ok(Date.parse(expires_at) > Date.now());
  await refused(tickets.redeem(ticket, 'bk_2'), /another bunker/);
  const p = await tickets.redeem(ticket, 'bk_1');
  assert.equal(p.tenantId, 'tn_alice');
  assert.equal(p.actor, 'key:ak_1');
  assert.deepEqual(p.permissions, ['scaibunker:execute']);
  await refused(tickets.redeem(ticket, 'bk_1'), /already used/);
});

test('expired, forged and foreign-key tickets are refused', async () => {
  const ledger = new InProcessTicketLedger();
  const tickets = ShellTickets.fromWorkerToken('worker-token', ledger);
  const old = tickets.mint(alice, 'bk_1', Date.now() - TICKET_TTL_MS - 1);
  await refused(tickets.redeem(old.ticket, 'bk_1'), /expired/);
  const { ticket } = tickets.mint(alice, 'bk_1');
  const [payload] = ticket.slice('sbtkt_'.length).split('.');
  await refused(tickets.redeem(`sbtkt_${payload}.AAAA`, 'bk_1'), /signature/);
  await refused(tickets.redeem('sbtkt_nonsense', 'bk_1'), /malformed/);
  const otherDeployment = ShellTickets.fromWorkerToken('another-token', ledger);
  await refused(otherDeployment.redeem(ticket, 'bk_1'), /signature/);
  // Another controller of the same deployment (same worker token) accepts it.
  const sibling = ShellTickets.fromWorkerToken('worker-token', ledger);
  assert.equal((await sibling.redeem(ticket, 'bk_1')).tenantId, 'tn_alice');
});

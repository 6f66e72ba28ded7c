import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Permission } from '@scaibunker/core';
import { systemPrincipal } from '../../src/auth/Principal.js';
import { Controller } from '../../src/Controller.js';

export const WORKER_TOKEN = 'test-worker-token-0123456789abcdef';
const system = systemPrincipal('test');

/** A controller on a fresh SQLite file, with no worker, for HTTP-level tests via inject(). */
export async function testController(): Promise<{ controller: Controller; adminKey: string; cleanup(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'sb-ctl-'));
  const controller = await Controller.open({
    databaseUrl: `sqlite:${join(dir, 'db.sqlite')}`,
    blobDir: join(dir, 'blobs'),
    workerToken: WORKER_TOKEN,
  });
  const adminKey = (await controller.services.tenants.bootstrap()) as string;
  return {
    controller,
    adminKey,
    async cleanup() {
      await controller.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function tenantWithKey(
  controller: Controller,
  name: string,
  permissions: Permission[],
): Promise<{ tenantId: string; key: string }> {
  const t = await controller.services.tenants.createTenant(system, name);
  const { key } = await controller.services.tenants.createApiKey(system, t.id, `${name}-key`, permissions);
  return { tenantId: t.id, key };
}

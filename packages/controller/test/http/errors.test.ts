import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { ERROR_CODES } from '@scaibunker/core';
import { testController } from '../helpers/testController.js';

const docs = readFileSync(new URL('../../../../docs/API.md', import.meta.url), 'utf8');

let ctl: Awaited<ReturnType<typeof testController>>;
before(async () => {
  ctl = await testController();
});
after(async () => ctl?.cleanup());

test('the error table, the OpenAPI document and docs/API.md agree', () => {
  const doc = ctl.controller.openapi as {
    paths: Record<string, Record<string, { responses: Record<string, { 'x-error-codes'?: string[] }> }>>;
  };
  const inOpenApi = new Map<string, number>();
  for (const ops of Object.values(doc.paths)) {
    for (const op of Object.values(ops)) {
      for (const [status, resp] of Object.entries(op.responses)) {
        for (const code of resp['x-error-codes'] ?? []) inOpenApi.set(code, Number(status));
      }
    }
  }
  const documented = new Map<string, number>();
  for (const m of docs.matchAll(/^\|\s*`([A-Z_]+)`\s*\|\s*(\d{3})\s*\|/gm)) documented.set(m[1] as string, Number(m[2]));

  for (const [code, { status }] of Object.entries(ERROR_CODES)) {
    assert.equal(documented.get(code), status, `docs/API.md documents ${code} as ${status}`);
    if (inOpenApi.has(code)) assert.equal(inOpenApi.get(code), status, `OpenAPI answers ${code} with ${status}`);
  }
  for (const [code, status] of inOpenApi)
    assert.equal(ERROR_CODES[code as keyof typeof ERROR_CODES]?.status, status, `${code} is in the table`);
  for (const code of documented.keys()) assert.ok(code in ERROR_CODES, `docs/API.md lists ${code}, which is not in the table`);
});

test('every operation of the OpenAPI document is in docs/API.md with its permission', () => {
  const doc = ctl.controller.openapi as { paths: Record<string, Record<string, { 'x-scaibunker-auth': string }>> };
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const row = docs.split('\n').find((l) => l.startsWith(`| \`${method.toUpperCase()} ${path}\``));
      assert.ok(row, `docs/API.md lists ${method.toUpperCase()} ${path}`);
      const auth = op['x-scaibunker-auth'];
      assert.ok(
        row.includes(
          auth === 'worker' ? 'worker token' : auth === 'storage' ? 'storage token' : auth === 'public' ? 'public' : `\`${auth}\``,
        ),
        `${path} documents ${auth}`,
      );
    }
  }
});

test('the OpenAPI document validates requests from the same schemas: the create body forbids unknown fields', () => {
  const doc = ctl.controller.openapi as {
    components: { schemas: Record<string, { additionalProperties?: boolean; required?: string[] }> };
  };
  assert.equal(doc.components.schemas.CreateBunker?.additionalProperties, false);
  // `image` or `snapshot_id`: the service says which is missing.
  assert.deepEqual(doc.components.schemas.CreateBunker?.required, undefined);
});

/**
 * The SDK's generated files must be exactly what the generator produces from the API today:
 * a route or schema change without `npm run -w @scaibunker/sdk generate` fails here.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { renderSdkFiles, SDK_OPENAPI_PATH, SDK_SCHEMA_PATH } from '../../../scripts/generate-sdk.js';

const HINT = 'the API changed: run `npm run -w @scaibunker/sdk generate` and commit the result';

test('packages/sdk/openapi.json and src/generated/schema.ts match the generator output', async () => {
  const fresh = await renderSdkFiles();
  const [openapiJson, schemaTs] = await Promise.all([readFile(SDK_OPENAPI_PATH, 'utf8'), readFile(SDK_SCHEMA_PATH, 'utf8')]);
  assert.ok(openapiJson === fresh.openapiJson, `packages/sdk/openapi.json is stale: ${HINT}`);
  assert.ok(schemaTs === fresh.schemaTs, `packages/sdk/src/generated/schema.ts is stale: ${HINT}`);
});

test('the committed document is the OpenAPI 3.1 document of the ScaiBunker API', async () => {
  const doc = JSON.parse(await readFile(SDK_OPENAPI_PATH, 'utf8')) as { openapi: string; paths: Record<string, unknown> };
  assert.equal(doc.openapi, '3.1.0');
  for (const path of [
    '/v1/modules/scaibunker/bunkers',
    '/v1/modules/scaibunker/bunkers/{id}/exec',
    '/v1/modules/scaibunker/bunkers/{id}/files',
  ]) {
    assert.ok(path in doc.paths, `${path} is in the document`);
  }
});

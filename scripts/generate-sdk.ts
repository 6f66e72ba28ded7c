/**
 * Generates the SDK's view of the API from the controller's own OpenAPI document:
 *   packages/sdk/openapi.json            the document, pretty-printed
 *   packages/sdk/src/generated/schema.ts types produced by openapi-typescript
 *
 * Run: npm run -w @scaibunker/sdk generate
 * packages/sdk/test/generated.test.ts calls renderSdkFiles() and fails when the committed
 * files differ, so the client cannot drift from the API.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Controller } from '@scaibunker/controller';
import openapiTS, { astToString } from 'openapi-typescript';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export const SDK_OPENAPI_PATH = join(repoRoot, 'packages/sdk/openapi.json');
export const SDK_SCHEMA_PATH = join(repoRoot, 'packages/sdk/src/generated/schema.ts');

const SCHEMA_HEADER = `/**
 * GENERATED from packages/sdk/openapi.json by scripts/generate-sdk.ts — do not edit.
 * Regenerate with: npm run -w @scaibunker/sdk generate
 */
`;

export interface SdkFiles {
  openapiJson: string;
  schemaTs: string;
}

/** The controller's OpenAPI document, from a throwaway in-memory controller (no worker). */
export async function loadOpenApiDocument(): Promise<Record<string, unknown>> {
  const blobDir = await mkdtemp(join(tmpdir(), 'scaibunker-sdkgen-'));
  try {
    const controller = await Controller.open({ databaseUrl: ':memory:', blobDir });
    try {
      return JSON.parse(JSON.stringify(controller.openapi)) as Record<string, unknown>;
    } finally {
      await controller.close();
    }
  } finally {
    await rm(blobDir, { recursive: true, force: true });
  }
}

/** What the generated files must contain right now. */
export async function renderSdkFiles(): Promise<SdkFiles> {
  const document = await loadOpenApiDocument();
  const openapiJson = `${JSON.stringify(document, null, 2)}\n`;
  const ast = await openapiTS(JSON.parse(openapiJson), { alphabetize: false, exportType: false, defaultNonNullable: false });
  const schemaTs = `${SCHEMA_HEADER}\n${astToString(ast)}`;
  return { openapiJson, schemaTs };
}

export async function writeSdkFiles(): Promise<SdkFiles> {
  const files = await renderSdkFiles();
  await mkdir(dirname(SDK_SCHEMA_PATH), { recursive: true });
  await writeFile(SDK_OPENAPI_PATH, files.openapiJson);
  await writeFile(SDK_SCHEMA_PATH, files.schemaTs);
  return files;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href;
if (invokedDirectly) {
  await writeSdkFiles();
  process.stdout.write(`wrote ${SDK_OPENAPI_PATH}\nwrote ${SDK_SCHEMA_PATH}\n`);
}

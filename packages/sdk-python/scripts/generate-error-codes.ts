/**
 * Generates packages/sdk-python/scaibunker/_error_codes.py from the one error table
 * (packages/core/src/errors/codes.ts) and the TypeScript SDK's grouping of codes into classes
 * (packages/sdk/src/errors.ts, ERROR_CLASS_BY_CODE), so the Python SDK maps every code exactly
 * as the TypeScript one does.
 *
 *   bash scripts/node.sh --import tsx packages/sdk-python/scripts/generate-error-codes.ts          # write
 *   bash scripts/node.sh --import tsx packages/sdk-python/scripts/generate-error-codes.ts --check  # exit 1 when stale
 *
 * packages/sdk-python/tests/test_errors.py runs the --check form.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERROR_CODES, type ErrorCode, RESULT_CODES } from '../../core/src/errors/codes.ts';
import { ERROR_CLASS_BY_CODE, SDK_ERROR_CODES } from '../../sdk/src/errors.ts';

const here = dirname(fileURLToPath(import.meta.url));
export const PYTHON_ERROR_CODES_PATH = resolve(here, '../scaibunker/_error_codes.py');

/** A Python string literal (JSON's escapes are valid Python for these texts). */
function py(text: string): string {
  return JSON.stringify(text);
}

export function renderPythonErrorCodes(): string {
  const lines: string[] = [
    '# GENERATED from packages/core/src/errors/codes.ts and packages/sdk/src/errors.ts',
    '# by packages/sdk-python/scripts/generate-error-codes.ts — do not edit.',
    '# Regenerate with: npm run generate',
    '"""The API\'s error table: code -> HTTP status, the SDK exception class name, description."""',
    '',
    'from __future__ import annotations',
    '',
    'from typing import NamedTuple',
    '',
    '',
    'class ErrorCodeInfo(NamedTuple):',
    '    status: int',
    '    error_class: str',
    '    description: str',
    '',
    '',
    'ERROR_CODES: dict[str, ErrorCodeInfo] = {',
  ];
  for (const code of Object.keys(ERROR_CODES) as ErrorCode[]) {
    const info = ERROR_CODES[code];
    lines.push(`    ${py(code)}: ErrorCodeInfo(${info.status}, ${py(ERROR_CLASS_BY_CODE[code].name)}, ${py(info.description)}),`);
  }
  lines.push('}', '', '# Codes the SDK itself produces when there is no API error body to read.', 'SDK_ERROR_CODES: dict[str, int] = {');
  for (const [code, info] of Object.entries(SDK_ERROR_CODES)) lines.push(`    ${py(code)}: ${info.status},`);
  lines.push('}', '', '# Not HTTP errors: values that appear inside successful results.', 'RESULT_CODES: dict[str, str] = {');
  for (const [code, description] of Object.entries(RESULT_CODES)) lines.push(`    ${py(code)}: ${py(description)},`);
  lines.push('}', '');
  return lines.join('\n');
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const want = renderPythonErrorCodes();
  if (process.argv.includes('--check')) {
    let have = '';
    try {
      have = readFileSync(PYTHON_ERROR_CODES_PATH, 'utf8');
    } catch {
      // missing: stale
    }
    if (have !== want) {
      console.error(`${join('packages/sdk-python/scaibunker', '_error_codes.py')} is stale: run npm run generate`);
      process.exit(1);
    }
    console.log('_error_codes.py is up to date');
  } else {
    writeFileSync(PYTHON_ERROR_CODES_PATH, want);
    console.log(`wrote ${PYTHON_ERROR_CODES_PATH}`);
  }
}

#!/usr/bin/env node
// Turns Firecracker's published OpenAPI document (Swagger 2.0, YAML) into the JSON fixture the
// Firecracker API double validates requests against. Run once per Firecracker version taken:
//
//   git -C <firecracker checkout> show v1.16.1:src/firecracker/swagger/firecracker.yaml \
//     > packages/worker/test/fixtures/firecracker.yaml
//   node scripts/firecracker-api-fixture.mjs v1.16.1 <commit>
//
// Both files are kept: the YAML as published (diffable against upstream), the JSON for the
// tests (no YAML parser among the dependencies; js-yaml is only in node_modules as a
// devDependency's dependency, which is enough for this one-off conversion).
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [tag, commit] = process.argv.slice(2);
if (!tag || !/^[0-9a-f]{40}$/.test(commit ?? '')) {
  console.error('usage: node scripts/firecracker-api-fixture.mjs <tag> <40-hex commit>');
  process.exit(2);
}
const { load } = await import('js-yaml');
const dir = join(import.meta.dirname, '../packages/worker/test/fixtures');
const doc = load(readFileSync(join(dir, 'firecracker.yaml'), 'utf8'));
doc['x-scaibunker-source'] = {
  repository: 'https://github.com/firecracker-microvm/firecracker',
  path: 'src/firecracker/swagger/firecracker.yaml',
  tag,
  commit,
};
writeFileSync(join(dir, 'firecracker.json'), `${JSON.stringify(doc, null, 2)}\n`);
console.log(`firecracker.json: Firecracker API ${doc.info.version} (${tag}, ${commit.slice(0, 12)})`);

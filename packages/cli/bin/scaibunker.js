#!/usr/bin/env node
// The sources are TypeScript run through tsx's loader: no build step, so `npx scaibunker`
// works straight after `npm ci`.
import { register } from 'tsx/esm/api';

register();
await (await import('../src/main.ts')).main();

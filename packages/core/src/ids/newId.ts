import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const ID_BYTES = 20;

/** Random bytes drawn in bulk: one CSPRNG call per 204 ids instead of one per id (every exec makes one). */
const pool = Buffer.alloc(ID_BYTES * 204);
let offset = pool.length;

/** Short, prefixed, unguessable ids (100 random bits, Crockford-style base32). */
export function newId(prefix: string): string {
  if (offset + ID_BYTES > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  let out = '';
  for (let i = offset; i < offset + ID_BYTES; i++) out += ALPHABET[(pool[i] as number) & 31];
  offset += ID_BYTES;
  return `${prefix}_${out}`;
}

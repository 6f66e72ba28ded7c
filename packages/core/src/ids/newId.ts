import { randomFillSync } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const ID_BYTES = 20;

/** Random bytes drawn in bulk: one CSPRNG call per 204 ids instead of one per id (every exec makes one). */
const pool = Buffer.alloc(ID_BYTES * 204);
let offset = pool.length;

/** What follows an id's `<prefix>_`, unanchored: for patterns that embed an id (preview host names). */
export const ID_BODY_PATTERN = `[0-9a-z]{${ID_BYTES}}`;

/** The pattern every id made by `newId(prefix)` matches (JSON Schema / RegExp source). */
export function idPattern(prefix: string): string {
  return `^${prefix}_${ID_BODY_PATTERN}$`;
}

/** A sha256 as this project writes it, unanchored: for patterns that embed one (digests, file names). */
export const SHA256_HEX_BODY = '[0-9a-f]{64}';
/** A sha256 as this project writes it: 64 lowercase hex digits (images are named by theirs). */
export const SHA256_HEX_PATTERN = `^${SHA256_HEX_BODY}$`;
export const SHA256_HEX = new RegExp(SHA256_HEX_PATTERN);

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

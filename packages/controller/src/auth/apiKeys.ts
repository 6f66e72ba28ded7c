import { hash, randomBytes } from 'node:crypto';

const PREFIX = 'sbk_';

/** A new API key: 32 random bytes; only the SHA-256 of the whole key string is stored. */
export function generateApiKey(): { key: string; hash: string } {
  const key = PREFIX + randomBytes(32).toString('base64url');
  return { key, hash: hashApiKey(key) };
}

/** One-shot `crypto.hash`: every API request hashes its key, and a Hash object per call cost ~4× as much. */
export function hashApiKey(key: string): string {
  return hash('sha256', key, 'hex');
}

export function looksLikeApiKey(token: string): boolean {
  return token.startsWith(PREFIX);
}

import { createHash, randomBytes } from 'node:crypto';

const PREFIX = 'sbk_';

/** A new API key: 32 random bytes; only the SHA-256 of the whole key string is stored. */
export function generateApiKey(): { key: string; hash: string } {
  const key = PREFIX + randomBytes(32).toString('base64url');
  return { key, hash: hashApiKey(key) };
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function looksLikeApiKey(token: string): boolean {
  return token.startsWith(PREFIX);
}

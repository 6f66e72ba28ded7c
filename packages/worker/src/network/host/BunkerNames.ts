import { createHash } from 'node:crypto';

/**
 * Derives every kernel object name of a bunker from a short hash of its id, because interface
 * names are capped at 15 bytes and bunker ids are longer; the same id always yields the same
 * names, so a restarted worker (or a teardown without a state file) finds them again.
 *
 *   host veth  <p>v<key>    ifb  <p>i<key>    netns  <p>n-<key>    nft table  inet <p>_<key>
 *
 * `key` is 10 hex digits (40 bits); an allocation refuses an id whose key is already taken.
 */
export class BunkerNames {
  static readonly KEY_LENGTH = 10;
  private readonly hostIfRe: RegExp;
  private readonly ifbRe: RegExp;
  private readonly netnsRe: RegExp;
  private readonly tableRe: RegExp;

  constructor(readonly prefix: string) {
    if (!/^[a-z]{2,4}$/.test(prefix)) throw new Error(`name prefix must be 2-4 lowercase letters, got '${prefix}'`);
    const k = `([0-9a-f]{${BunkerNames.KEY_LENGTH}})`;
    this.hostIfRe = new RegExp(`^${prefix}v${k}$`);
    this.ifbRe = new RegExp(`^${prefix}i${k}$`);
    this.netnsRe = new RegExp(`^${prefix}n-${k}$`);
    this.tableRe = new RegExp(`^${prefix}_${k}$`);
  }

  key(bunkerId: string): string {
    return createHash('sha256').update(bunkerId).digest('hex').slice(0, BunkerNames.KEY_LENGTH);
  }

  hostIf(key: string): string {
    return `${this.prefix}v${key}`;
  }

  ifb(key: string): string {
    return `${this.prefix}i${key}`;
  }

  netns(key: string): string {
    return `${this.prefix}n-${key}`;
  }

  table(key: string): string {
    return `${this.prefix}_${key}`;
  }

  /** The key of a link name this class produced (host veth or ifb), else undefined. */
  keyOfLink(name: string): string | undefined {
    return this.hostIfRe.exec(name)?.[1] ?? this.ifbRe.exec(name)?.[1];
  }

  keyOfNetns(name: string): string | undefined {
    return this.netnsRe.exec(name)?.[1];
  }

  keyOfTable(name: string): string | undefined {
    return this.tableRe.exec(name)?.[1];
  }
}

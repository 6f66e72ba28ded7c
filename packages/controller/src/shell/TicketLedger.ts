/** Remembers which single-use tickets were spent; shared by every controller when Redis is. */
export interface TicketLedger {
  /** True the first time `id` is claimed (within `ttlMs`), false on every later claim. */
  claim(id: string, ttlMs: number): Promise<boolean>;
  close(): Promise<void>;
}

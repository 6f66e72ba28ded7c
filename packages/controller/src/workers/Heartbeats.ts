/**
 * When each worker last sent a heartbeat: Redis when several controllers share the fleet (a
 * worker heartbeats to one of them; every controller's monitor reads them all), in-process when
 * embedded. Not durable, and need not be: the workers row keeps a coarse copy, and a wiped store
 * fills again with the next round of heartbeats.
 */
export interface Heartbeats {
  record(workerId: string, atMs: number): Promise<void>;
  /** Every recorded worker's last heartbeat (ms since the epoch). */
  lastSeen(): Promise<Map<string, number>>;
  close(): Promise<void>;
}

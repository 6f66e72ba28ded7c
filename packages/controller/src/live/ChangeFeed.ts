/**
 * What changed: a bunker row (its state, worker or anything else a cache may hold), or an API
 * key row (revoked: every controller's key cache drops it).
 */
export type ChangeTopic = 'bunker' | 'api_key';

export const CHANGE_TOPICS: readonly ChangeTopic[] = ['bunker', 'api_key'];

/** `id: null`: notices may have been lost (Redis reconnected): drop everything cached for the topic. */
export type ChangeListener = (topic: ChangeTopic, id: string | null) => void;

/**
 * Row-change notices between controllers, so each can cache hot rows in process and still see
 * another controller's writes: in-process alone (one controller) or over Redis pub/sub. A notice
 * reaches this controller's listeners synchronously, before `publish` returns.
 */
export interface ChangeFeed {
  publish(topic: ChangeTopic, id: string): void;
  subscribe(listener: ChangeListener): void;
  close(): Promise<void>;
}

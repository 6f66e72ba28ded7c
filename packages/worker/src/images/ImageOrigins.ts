/**
 * Where an image missing from the worker's cache can come from, as the ImageCache sees it:
 * peers of the same availability group, then storage. Tests plug their own.
 */
import type { Readable } from 'node:stream';

export interface ImagePeer {
  workerId: string;
  /** The peer worker's base URL (its HTTP server serves `GET /v1/images/{sha256}`). */
  url: string;
}

export interface ImageOrigins {
  /** Workers that hold the image and may serve it (may be empty; may include this worker itself). */
  peers(sha256: string): Promise<ImagePeer[]>;
  /**
   * Streams the image from storage, from byte `from` on (default 0: all of it; more: a `Range`
   * request, to continue a download that was cut). Rejects with WorkerError('IMAGE_NOT_CACHED')
   * when storage does not have it, with RangeNotHonored when it would send the whole image
   * instead of the rest; any other rejection or stream error is a failed fetch.
   */
  openFromStorage(sha256: string, from?: number): Promise<Readable>;
}

/** A source answered a request for the rest of an image with all of it (storage: start again from 0). */
export class RangeNotHonored extends Error {}

/**
 * Opens one peer's copy of an image, from byte `from` on (0: all of it; more: the rest, to
 * continue a download that was cut). Rejects when the peer does not have it, with
 * RangeNotHonored when it would send the whole image instead of the rest.
 */
export interface PeerImageOpener {
  open(peer: ImagePeer, sha256: string, signal: AbortSignal, from: number): Promise<Readable>;
}

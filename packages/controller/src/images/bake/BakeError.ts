export type BakeErrorReason =
  | 'SOURCE_NOT_FOUND'
  | 'REGISTRY_UNREACHABLE'
  | 'AUTH_FAILED'
  | 'PLATFORM_MISSING'
  | 'DIGEST_MISMATCH'
  | 'LAYER_INVALID'
  | 'MKFS_FAILED'
  | 'INVALID_SOURCE';

/** A bake failure the caller can act on by `reason`; anything else thrown by a bake is a bug or an abort. */
export class BakeError extends Error {
  override readonly name = 'BakeError';

  constructor(
    readonly reason: BakeErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** True for the error a fetch/pipeline/child process rejects with when its AbortSignal fires. */
export function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || (err as { code?: string }).code === 'ABORT_ERR');
}

/**
 * Runs `fn` at most once at a time and remembers its success: concurrent and later callers
 * share the first run; a failure is not remembered, so the next call tries again.
 */
export function onceUntilSuccess(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => {
    running ??= fn().catch((e: unknown) => {
      running = undefined;
      throw e;
    });
    return running;
  };
}

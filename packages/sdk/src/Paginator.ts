/** One page of a cursor-paginated listing. */
export interface Page<T> {
  items: T[];
  /** Pass to the next call to get the following page; null after the last page. */
  nextCursor: string | null;
}

/**
 * A cursor-paginated listing, fetched lazily: `for await (const x of listing)` walks every
 * item of every page; `page()` fetches a single page; `toArray()` collects everything.
 */
export class Paginator<T> implements AsyncIterable<T> {
  constructor(
    private readonly fetchPage: (cursor: string | undefined) => Promise<Page<T>>,
    private readonly startCursor?: string,
  ) {}

  /** One page: the first (or the one the listing started at), or the one at `cursor`. */
  page(cursor: string | undefined = this.startCursor): Promise<Page<T>> {
    return this.fetchPage(cursor);
  }

  /** Every page in order, each fetched when the previous one has been consumed. */
  async *pages(): AsyncGenerator<Page<T>> {
    let cursor = this.startCursor;
    for (;;) {
      const page = await this.fetchPage(cursor);
      yield page;
      if (page.nextCursor === null) return;
      cursor = page.nextCursor;
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for await (const page of this.pages()) yield* page.items;
  }

  /** Every item of every page in one array. */
  async toArray(): Promise<T[]> {
    const out: T[] = [];
    for await (const item of this) out.push(item);
    return out;
  }
}

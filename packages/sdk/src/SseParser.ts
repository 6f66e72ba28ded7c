/** One Server-Sent Event: `event` defaults to `message`; multi-line `data` is joined by `\n`. */
export interface SseEvent {
  event: string;
  data: string;
  id?: string;
}

/**
 * An incremental text/event-stream parser (the WHATWG rules that matter to a client): feed it
 * text in chunks split anywhere, get whole events back. Lines end in LF, CRLF or CR (a CR at the
 * end of a chunk waits for the next one to see whether an LF follows); `:` lines are comments;
 * an event is dispatched on a blank line, and only if it carried a `data` field.
 */
export class SseParser {
  private buffer = '';
  private eventType = '';
  private dataLines: string[] = [];
  private hasData = false;
  private lastEventId: string | undefined;

  /** Feed the next piece of decoded text; returns the events it completed. */
  push(text: string): SseEvent[] {
    this.buffer += text;
    const events: SseEvent[] = [];
    let start = 0;
    for (let i = 0; i < this.buffer.length; i++) {
      const ch = this.buffer.charCodeAt(i);
      if (ch !== 10 && ch !== 13) continue;
      if (ch === 13) {
        // CR: if it is the last character we cannot know yet whether an LF follows.
        if (i + 1 === this.buffer.length) break;
        this.takeLine(this.buffer.slice(start, i), events);
        if (this.buffer.charCodeAt(i + 1) === 10) i++;
      } else {
        this.takeLine(this.buffer.slice(start, i), events);
      }
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  /** The stream ended: per the spec, an event not closed by a blank line is discarded. */
  end(): SseEvent[] {
    this.buffer = '';
    this.resetEvent();
    return [];
  }

  private takeLine(line: string, events: SseEvent[]): void {
    if (line === '') {
      this.dispatch(events);
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    switch (field) {
      case 'event':
        this.eventType = value;
        break;
      case 'data':
        this.dataLines.push(value);
        this.hasData = true;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      default:
        // `retry` and unknown fields: nothing for this client to do.
        break;
    }
  }

  private dispatch(events: SseEvent[]): void {
    if (this.hasData) {
      events.push({
        event: this.eventType || 'message',
        data: this.dataLines.join('\n'),
        ...(this.lastEventId === undefined ? {} : { id: this.lastEventId }),
      });
    }
    this.resetEvent();
  }

  private resetEvent(): void {
    this.eventType = '';
    this.dataLines = [];
    this.hasData = false;
  }
}

/** Events from a byte stream (a fetch body), decoding UTF-8 across chunk boundaries. */
export async function* readSseEvents(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  const parser = new SseParser();
  const decoder = new TextDecoder('utf-8');
  for await (const chunk of body) {
    yield* parser.push(decoder.decode(chunk, { stream: true }));
  }
  yield* parser.push(decoder.decode());
  yield* parser.end();
}

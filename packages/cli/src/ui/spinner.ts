const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const CLEAR_LINE = '\r\x1b[K';

/**
 * A one-line progress spinner for long steps. It draws only when its stream is a terminal;
 * otherwise every method is a no-op, so piped and `--json` output stays clean.
 */
export class Spinner {
  private timer: NodeJS.Timeout | undefined;
  private frame = 0;
  private text = '';
  private readonly startedAt = Date.now();

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    readonly enabled: boolean = stream.isTTY === true,
  ) {}

  start(text: string): this {
    this.text = text;
    if (!this.enabled || this.timer) return this;
    this.timer = setInterval(() => this.draw(), 80);
    this.timer.unref();
    this.draw();
    return this;
  }

  update(text: string): void {
    this.text = text;
  }

  /** Stops with a ✔ line (on a terminal). */
  succeed(text: string = this.text): void {
    this.finish(`✔ ${text} (${this.elapsed()})`);
  }

  /** Stops with a ✖ line (on a terminal). */
  fail(text: string = this.text): void {
    this.finish(`✖ ${text}`);
  }

  /** Stops and clears the line. */
  stop(): void {
    this.finish(undefined);
  }

  private elapsed(): string {
    const ms = Date.now() - this.startedAt;
    return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
  }

  private draw(): void {
    const frame = FRAMES[this.frame++ % FRAMES.length];
    // The time so far, once it is long enough to wonder: a wait that is still going shows it.
    const waited = Date.now() - this.startedAt >= 1000 ? ` (${this.elapsed()})` : '';
    this.stream.write(`${CLEAR_LINE}${frame} ${this.text}${waited}`);
  }

  private finish(line: string | undefined): void {
    if (!this.enabled) return;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.stream.write(`${CLEAR_LINE}${line ? `${line}\n` : ''}`);
  }
}

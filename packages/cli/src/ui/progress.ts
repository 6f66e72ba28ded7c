import { Spinner } from './spinner.js';

/**
 * Progress of a long wait (a bake, a snapshot, a fork), always on stderr so stdout keeps only
 * the result. On a terminal: a spinner line saying what is happening now and for how long. Not
 * on a terminal (logs, CI): one line per new step, so a log still shows how far it got —
 * unless `quiet` (`--json`: stderr stays for errors).
 */
export class Progress {
  private readonly spinner: Spinner;
  private lastLine: string | undefined;
  private lastKey: string | undefined;

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly quiet = false,
    enabled: boolean = stream.isTTY === true,
  ) {
    this.spinner = new Spinner(stream, enabled);
  }

  start(text: string): this {
    this.spinner.start(text);
    this.line(text);
    return this;
  }

  /** What it is doing now; `key` (default: the text) decides what counts as a new step for the plain lines. */
  step(text: string, key: string = text): void {
    this.spinner.update(text);
    if (key !== this.lastKey) {
      this.lastKey = key;
      this.line(text);
    }
  }

  succeed(text: string): void {
    this.spinner.succeed(text);
    this.line(text);
  }

  fail(text?: string): void {
    this.spinner.fail(text);
    if (text) this.line(text);
  }

  private line(text: string): void {
    if (this.spinner.enabled || this.quiet || text === this.lastLine) return;
    this.lastLine = text;
    this.stream.write(`${text}\n`);
  }
}

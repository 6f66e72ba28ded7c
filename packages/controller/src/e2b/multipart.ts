import { PassThrough, type Readable } from 'node:stream';
import { ApiError } from '@scaibunker/core';

export interface Part {
  /** `filename` of the part's Content-Disposition (the SDK puts the file's path there). */
  filename: string | undefined;
  data: Readable;
}

/** The boundary of a `multipart/form-data` content type, or undefined. */
export function boundaryOf(contentType: string | undefined): string | undefined {
  const m = /^multipart\/form-data\s*;.*\bboundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType ?? '');
  return m ? (m[1] ?? m[2]) : undefined;
}

const MAX_HEAD = 16 * 1024;

/**
 * A streaming `multipart/form-data` reader: each part is handed to `onPart` as a stream as soon
 * as its headers are in, and the next part is read only once that stream was consumed, so an
 * upload is never held whole in memory. Malformed input is VALIDATION_FAILED.
 */
export async function readMultipart(body: Readable, boundary: string, onPart: (p: Part) => Promise<void>): Promise<void> {
  const delim = Buffer.from(`\r\n--${boundary}`);
  // The first delimiter has no leading CRLF: pretend it had.
  let buf: Buffer = Buffer.from('\r\n');
  const it = body[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  let ended = false;
  const more = async (): Promise<boolean> => {
    if (ended) return false;
    const r = await it.next();
    if (r.done) {
      ended = true;
      return false;
    }
    buf = Buffer.concat([buf, r.value]);
    return true;
  };
  const bad = (why: string) => new ApiError('VALIDATION_FAILED', `malformed multipart body: ${why}`, { field: 'body' });

  // Preamble up to the first delimiter.
  for (;;) {
    const at = buf.indexOf(delim);
    if (at >= 0) {
      buf = buf.subarray(at + delim.length);
      break;
    }
    if (buf.length > delim.length) buf = buf.subarray(buf.length - delim.length);
    if (!(await more())) throw bad('no boundary');
  }
  for (;;) {
    // After a delimiter: `--` ends the body, CRLF starts a part.
    while (buf.length < 2) if (!(await more())) throw bad('truncated');
    if (buf[0] === 0x2d && buf[1] === 0x2d) {
      // The epilogue: read to the end, or the request never ends and its connection never goes idle.
      while (await more()) buf = buf.subarray(buf.length);
      return;
    }
    if (buf[0] !== 0x0d || buf[1] !== 0x0a) throw bad('no CRLF after the boundary');
    buf = buf.subarray(2);
    let headEnd = buf.indexOf('\r\n\r\n');
    while (headEnd < 0) {
      if (buf.length > MAX_HEAD) throw bad('part headers too long');
      if (!(await more())) throw bad('truncated part headers');
      headEnd = buf.indexOf('\r\n\r\n');
    }
    const head = buf.subarray(0, headEnd).toString('utf8');
    buf = buf.subarray(headEnd + 4);
    const disposition = /content-disposition:[^\r\n]*?\bfilename="([^"]*)"/i.exec(head);
    const data = new PassThrough();
    const consumed = onPart({ filename: disposition?.[1], data });
    // Body bytes until the next delimiter, keeping a delimiter's length back in case it straddles chunks.
    for (;;) {
      const at = buf.indexOf(delim);
      if (at >= 0) {
        if (!data.write(buf.subarray(0, at))) await waitDrain(data);
        buf = buf.subarray(at + delim.length);
        data.end();
        break;
      }
      const keep = delim.length - 1;
      if (buf.length > keep) {
        const chunk = buf.subarray(0, buf.length - keep);
        buf = buf.subarray(buf.length - keep);
        if (!data.write(chunk)) await waitDrain(data);
      }
      if (!(await more())) {
        data.destroy(bad('truncated part'));
        await consumed.catch(() => undefined);
        throw bad('truncated part');
      }
    }
    await consumed;
  }
}

function waitDrain(s: PassThrough): Promise<void> {
  return new Promise((r) => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      r();
    };
    s.on('drain', done);
    s.on('close', done);
  });
}

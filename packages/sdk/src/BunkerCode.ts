import { connectionFailed } from './errors.js';
import type { HttpTransport } from './HttpTransport.js';
import { readSseEvents } from './SseParser.js';
import type { CodeContext } from './types.js';

/** The value of a run's trailing expression: its `repr`, and richer forms where it has them. */
export interface CodeResult {
  text: string;
  html?: string;
  markdown?: string;
  svg?: string;
  /** base64 */
  png?: string;
  json?: unknown;
}

export interface CodeError {
  name: string;
  value: string;
  traceback: string;
}

/** What a run produced, collected. */
export interface Execution {
  stdout: string;
  stderr: string;
  results: CodeResult[];
  /** Set when the code raised (a `KeyboardInterrupt` when it ran past `timeoutS`). */
  error: CodeError | undefined;
  executionCount: number | null;
}

export interface RunCodeOptions {
  /** A context from `contexts.create()`; default: the bunker's own (started on first use). */
  contextId?: string;
  /** Interrupt the run after this long; the context keeps its state. */
  timeoutS?: number;
  onStdout?(text: string): void | Promise<void>;
  onStderr?(text: string): void | Promise<void>;
  onResult?(result: CodeResult): void | Promise<void>;
  signal?: AbortSignal;
}

/**
 * Stateful Python in the bunker (`POST …/code`): variables, imports and functions stay between
 * runs of a context. `bunker.code.run('x = 1')`, then `bunker.code.run('x + 1')` → result `2`.
 */
export class BunkerCode {
  constructor(
    private readonly transport: HttpTransport,
    private readonly bunkerId: string,
  ) {}

  /** Runs `code`; resolves with everything it produced (an exception is `error`, not a rejection). */
  async run(code: string, opts: RunCodeOptions = {}): Promise<Execution> {
    const res = await this.transport.request('post', '/v1/modules/scaibunker/bunkers/{id}/code', {
      path: { id: this.bunkerId },
      json: {
        code,
        ...(opts.contextId ? { context_id: opts.contextId } : {}),
        ...(opts.timeoutS !== undefined ? { timeout_s: opts.timeoutS } : {}),
      },
      headers: { accept: 'text/event-stream' },
      signal: opts.signal,
    });
    const out: Execution = { stdout: '', stderr: '', results: [], error: undefined, executionCount: null };
    for await (const event of readSseEvents(this.transport.bodyChunks(res))) {
      const data = JSON.parse(event.data) as Record<string, unknown>;
      switch (event.event) {
        case 'stdout':
          out.stdout += data.text as string;
          await opts.onStdout?.(data.text as string);
          break;
        case 'stderr':
          out.stderr += data.text as string;
          await opts.onStderr?.(data.text as string);
          break;
        case 'result': {
          const { type: _t, ...result } = data;
          out.results.push(result as unknown as CodeResult);
          await opts.onResult?.(result as unknown as CodeResult);
          break;
        }
        case 'error':
          out.error = { name: data.name as string, value: data.value as string, traceback: (data.traceback as string) ?? '' };
          break;
        case 'end_of_execution':
          out.executionCount = (data.execution_count as number | null) ?? null;
          return out;
        default:
          break;
      }
    }
    throw connectionFailed(`the code event stream from ${this.transport.baseUrl} ended before end_of_execution`);
  }

  /** A new context (its own kernel). */
  createContext(opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<CodeContext> {
    return this.transport.json('post', '/v1/modules/scaibunker/bunkers/{id}/code/contexts', { path: { id: this.bunkerId }, body: opts });
  }

  async listContexts(): Promise<CodeContext[]> {
    return (await this.transport.json('get', '/v1/modules/scaibunker/bunkers/{id}/code/contexts', { path: { id: this.bunkerId } })).items;
  }

  /** A fresh kernel under the same id: the context's state is dropped. */
  restartContext(contextId: string): Promise<CodeContext> {
    return this.transport.json('post', '/v1/modules/scaibunker/bunkers/{id}/code/contexts/{context_id}/restart', {
      path: { id: this.bunkerId, context_id: contextId },
    });
  }

  async deleteContext(contextId: string): Promise<void> {
    await this.transport.json('delete', '/v1/modules/scaibunker/bunkers/{id}/code/contexts/{context_id}', {
      path: { id: this.bunkerId, context_id: contextId },
    });
  }
}

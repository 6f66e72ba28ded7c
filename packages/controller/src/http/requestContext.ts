import { AsyncLocalStorage } from 'node:async_hooks';
import { PhaseTrace } from '@scaibunker/core';

/** What is known about the API request a piece of work runs for. */
export interface RequestContext {
  requestId: string;
  /** The request's phase timestamps (PhaseTrace.off unless SCAIBUNKER_TRACE_SPAWN=1). */
  trace: PhaseTrace;
}

/**
 * The current API request, carried through async calls (HttpServer enters it for every request),
 * so that code far from the route — HttpWorkerClient calls — can pass the request id on.
 */
export const requestContext = new AsyncLocalStorage<RequestContext>();

/** `x-request-id` of the request being served, for calls to workers; none outside a request. */
export function requestIdHeaders(): Record<string, string> {
  const id = requestContext.getStore()?.requestId;
  return id ? { 'x-request-id': id } : {};
}

/** An incoming `x-request-id` is kept when it is short and plain; otherwise a new one is made. */
export const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** The phase trace of the request being served (the no-op one outside a request or when tracing is off). */
export function requestTrace(): PhaseTrace {
  return requestContext.getStore()?.trace ?? PhaseTrace.off;
}

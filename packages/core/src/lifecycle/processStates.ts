/** An exec's states: the API's `Process.state` and the worker's `ProcessInfo.state`. */
export const PROCESS_STATES = ['running', 'exited', 'killed', 'timed_out', 'lost'] as const;
export type ProcessState = (typeof PROCESS_STATES)[number];

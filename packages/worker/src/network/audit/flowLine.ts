/** One finished flow as `scaibunker-flowlog` prints it (original direction = bunker → remote). */
export interface FlowLine {
  src: string;
  sport: number;
  dst: string;
  dport: number;
  proto: string;
  bytes_out: number;
  bytes_in: number;
  packets_out: number;
  packets_in: number;
  /** Conntrack timestamps in µs since the epoch; null when nf_conntrack_timestamp is off. */
  start_us: number | null;
  end_us: number | null;
}

export type ParsedLine = { kind: 'flow'; flow: FlowLine } | { kind: 'ready' } | { kind: 'lost' } | { kind: 'invalid' };

const NS_FIELD = /"(start_ns|end_ns)":(\d+)/g;

/**
 * Parses one stdout line of the flowlog binary. The nanosecond timestamps (~1.8e18) do not fit
 * a double exactly, so they are cut out and converted to µs through BigInt before JSON.parse
 * sees them; µs since the epoch stay below 2^53 for the next few centuries.
 */
export function parseFlowLine(line: string): ParsedLine {
  const ns: Record<string, bigint> = {};
  const text = line.replace(NS_FIELD, (_m, key: string, digits: string) => {
    ns[key] = BigInt(digits);
    return `"${key}":0`;
  });
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    return { kind: 'invalid' };
  }
  if (typeof obj !== 'object' || obj === null) return { kind: 'invalid' };
  const o = obj as Record<string, unknown>;
  if (o.ready === true) return { kind: 'ready' };
  if (o.lost === true) return { kind: 'lost' };
  const str = (k: string) => (typeof o[k] === 'string' ? (o[k] as string) : undefined);
  const num = (k: string) => (typeof o[k] === 'number' && Number.isFinite(o[k]) ? (o[k] as number) : undefined);
  const src = str('src');
  const dst = str('dst');
  const proto = str('proto');
  const sport = num('sport');
  const dport = num('dport');
  const bytesOut = num('bytes_out');
  const bytesIn = num('bytes_in');
  const packetsOut = num('packets_out');
  const packetsIn = num('packets_in');
  if (
    src === undefined ||
    dst === undefined ||
    proto === undefined ||
    sport === undefined ||
    dport === undefined ||
    bytesOut === undefined ||
    bytesIn === undefined ||
    packetsOut === undefined ||
    packetsIn === undefined
  ) {
    return { kind: 'invalid' };
  }
  const us = (v: bigint | undefined) => (v === undefined || v === 0n ? null : Number(v / 1000n));
  return {
    kind: 'flow',
    flow: {
      src,
      sport,
      dst,
      dport,
      proto,
      bytes_out: bytesOut,
      bytes_in: bytesIn,
      packets_out: packetsOut,
      packets_in: packetsIn,
      start_us: us(ns.start_ns),
      end_us: us(ns.end_ns),
    },
  };
}

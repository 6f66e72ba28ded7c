/** The p-th percentile of the samples (nearest rank), to 2 decimals; NaN when there are none. */
export function pct(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return Number((s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN).toFixed(2));
}

/**
 * The CVSS v3.0/v3.1 base score of a vector such as `CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H`
 * (9.8), per the specification's formula (section 7.1 and Appendix A's Roundup). Temporal and
 * environmental metrics in the vector are ignored. Undefined when the vector is not v3 or lacks
 * a base metric.
 */
export function cvss3BaseScore(vector: string): number | undefined {
  const parts = vector.trim().split('/');
  if (!/^CVSS:3\.[01]$/.test(parts[0] ?? '')) return undefined;
  const m = new Map<string, string>();
  for (const part of parts.slice(1)) {
    const [k, v] = part.split(':');
    if (k && v && !m.has(k)) m.set(k, v);
  }
  const scopeChanged = m.get('S') === 'C';
  if (m.get('S') !== 'U' && !scopeChanged) return undefined;
  const av = weight(AV, m.get('AV'));
  const ac = weight(AC, m.get('AC'));
  const pr = weight(scopeChanged ? PR_CHANGED : PR_UNCHANGED, m.get('PR'));
  const ui = weight(UI, m.get('UI'));
  const c = weight(CIA, m.get('C'));
  const i = weight(CIA, m.get('I'));
  const a = weight(CIA, m.get('A'));
  if ([av, ac, pr, ui, c, i, a].some((w) => w === undefined)) return undefined;

  const iss = 1 - (1 - c!) * (1 - i!) * (1 - a!);
  const impact = scopeChanged ? 7.52 * (iss - 0.029) - 3.25 * (iss - 0.02) ** 15 : 6.42 * iss;
  const exploitability = 8.22 * av! * ac! * pr! * ui!;
  if (impact <= 0) return 0;
  return roundUp(Math.min((scopeChanged ? 1.08 : 1) * (impact + exploitability), 10));
}

const AV = { N: 0.85, A: 0.62, L: 0.55, P: 0.2 };
const AC = { L: 0.77, H: 0.44 };
const PR_UNCHANGED = { N: 0.85, L: 0.62, H: 0.27 };
const PR_CHANGED = { N: 0.85, L: 0.68, H: 0.5 };
const UI = { N: 0.85, R: 0.62 };
const CIA = { H: 0.56, L: 0.22, N: 0 };

function weight(table: Record<string, number>, key: string | undefined): number | undefined {
  return key !== undefined && Object.hasOwn(table, key) ? table[key] : undefined;
}

/** CVSS v3.1 Roundup: the smallest one-decimal number ≥ the input, computed in integers to dodge float error (e.g. 4.000000001 → 4.0, not 4.1). */
function roundUp(value: number): number {
  const scaled = Math.round(value * 100_000);
  return scaled % 10_000 === 0 ? scaled / 100_000 : (Math.floor(scaled / 10_000) + 1) / 10;
}

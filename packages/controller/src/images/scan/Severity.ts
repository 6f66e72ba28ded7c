export type SeverityBand = 'critical' | 'high' | 'medium' | 'low';

export const SEVERITY_ORDER: ReadonlyArray<SeverityBand | 'unknown'> = ['critical', 'high', 'medium', 'low', 'unknown'];

/**
 * One vocabulary for the words different databases use: GHSA's MODERATE, Red Hat's Important,
 * Ubuntu's negligible, Debian's unimportant. Undefined for anything else (`unknown` in counts).
 */
export function normaliseSeverity(value: unknown): SeverityBand | undefined {
  if (typeof value !== 'string') return undefined;
  switch (value.trim().toLowerCase()) {
    case 'critical':
      return 'critical';
    case 'high':
    case 'important':
      return 'high';
    case 'medium':
    case 'moderate':
      return 'medium';
    case 'low':
    case 'negligible':
    case 'unimportant':
    case 'minor':
      return 'low';
    default:
      return undefined;
  }
}

/**
 * The CVSS v3 qualitative rating of a base score. CVSS calls 0.0 "None"; a vulnerability record
 * scored that low still exists, so it is reported as low rather than dropped.
 */
export function severityFromScore(score: number): SeverityBand {
  if (score >= 9) return 'critical';
  if (score >= 7) return 'high';
  if (score >= 4) return 'medium';
  return 'low';
}

/**
 * Preview host names: `{port}-{bunker id with _ as -}.{preview domain}`, one DNS label for the
 * bunker and port (`8080-bk-0123…` is DNS-safe and at most 29 characters), so one wildcard
 * record and certificate (`*.preview.example.com`) cover every preview. The E2B SDK's
 * `getHost(port)` spells the id as it is (`8080-bk_0123…`): that form names the same preview.
 */
import { ID_BODY_PATTERN } from '@scaibunker/core';

/** `{port}-{prefix}-{id body}` (or `_`, as the E2B SDK spells it): the label under the preview domain. */
const PREVIEW_LABEL = new RegExp(`^([1-9][0-9]{0,4})-([a-z]{2})[-_](${ID_BODY_PATTERN})$`);

export function previewHostname(domain: string, bunkerId: string, port: number): string {
  return `${port}-${bunkerId.replace('_', '-')}.${domain}`;
}

/**
 * What a Host header names: `undefined` when it is not under the preview domain (an API
 * request), `null` when it is under it but names no preview, else the bunker and port.
 */
export function parsePreviewHost(host: string | undefined, domain: string): { bunkerId: string; port: number } | null | undefined {
  if (!host) return undefined;
  const name = host.toLowerCase().replace(/:\d+$/, '').replace(/\.$/, '');
  const suffix = `.${domain.toLowerCase()}`;
  if (!name.endsWith(suffix)) return undefined;
  const m = PREVIEW_LABEL.exec(name.slice(0, -suffix.length));
  if (!m || m[2] !== 'bk') return null;
  const port = Number(m[1]);
  if (port > 65535) return null;
  return { bunkerId: `bk_${m[3]}`, port };
}

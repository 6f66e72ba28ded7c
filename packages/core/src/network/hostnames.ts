/**
 * Hostname rules for network profiles: the package-registry list behind `registry`, the
 * validation every `network_allowlist` entry passes at the API edge, and the one matcher the
 * worker's DNS filter and the controller share.
 *
 * An allowlist entry is a plain hostname (`pypi.org`) or a first-level wildcard
 * (`*.example.com`, matching exactly one extra label). Names are compared case-insensitively and
 * a single trailing dot (fully qualified form) is ignored.
 */

/**
 * Hostnames a `registry` bunker may resolve and reach: package registries, model hubs and OS
 * package mirrors. Every entry passes `allowlistEntryError`.
 */
export const REGISTRY_HOSTNAMES: readonly string[] = Object.freeze([
  // Python: PyPI index and its file host.
  'pypi.org',
  'files.pythonhosted.org',
  // JavaScript: npm registry and the Yarn mirror of it.
  'registry.npmjs.org',
  'registry.yarnpkg.com',
  // Rust: crates.io API, sparse index and crate downloads.
  'crates.io',
  'index.crates.io',
  'static.crates.io',
  // Java: Maven Central.
  'repo.maven.apache.org',
  'repo1.maven.org',
  // Ruby: RubyGems API and compact index.
  'rubygems.org',
  'index.rubygems.org',
  // Hugging Face Hub, its LFS CDN hosts and the hf.co storage/CDN names (one label deep).
  'huggingface.co',
  'cdn-lfs.huggingface.co',
  'cdn-lfs-us-1.huggingface.co',
  'cdn-lfs-eu-1.huggingface.co',
  'hf.co',
  '*.hf.co',
  // OS package mirrors: Debian, Ubuntu, Alpine.
  'deb.debian.org',
  'security.debian.org',
  'archive.ubuntu.com',
  'security.ubuntu.com',
  'ports.ubuntu.com',
  'dl-cdn.alpinelinux.org',
]);

/** Longest hostname in presentation form without the trailing dot (RFC 1035). */
const MAX_NAME_LENGTH = 253;
/** Longest single label (RFC 1035). */
const MAX_LABEL_LENGTH = 63;
/** Letters, digits and inner hyphens (LDH rule; lower-cased before checking). */
const LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;
const IPV6ISH = /^\[?[0-9a-f:.]*:[0-9a-f:.]*(?:%[^\]]*)?\]?$/i;

/** Lower-cases and drops one trailing dot; the form names are compared in. */
function normalize(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}

/** Why `labels` (already split, lower-cased) is not a hostname, or undefined when it is. */
function labelsError(labels: readonly string[]): string | undefined {
  for (const label of labels) {
    if (label.length === 0) return 'has an empty label';
    if (label.length > MAX_LABEL_LENGTH) return `has a label longer than ${MAX_LABEL_LENGTH} characters`;
    if (!LABEL.test(label)) return `label '${label}' may only hold letters, digits and inner hyphens`;
  }
  if (/^\d+$/.test(labels[labels.length - 1]!)) return 'ends in an all-numeric label';
  return undefined;
}

/**
 * Why `entry` is not a valid allowlist entry, or undefined when it is. Valid: a plain hostname
 * with at least two labels, or `*.` followed by a hostname with at least two labels. Rejected:
 * URLs (scheme, path, port, credentials), IP literals, `**`, a bare `*`, wildcards anywhere but
 * the whole first label, empty labels, labels over 63 characters, names over 253 characters and
 * characters outside letters, digits, hyphens and dots.
 */
export function allowlistEntryError(entry: string): string | undefined {
  if (typeof entry !== 'string') return 'must be a string';
  if (entry.length === 0) return 'is empty';
  if (/\s/.test(entry)) return 'contains whitespace';
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(entry)) return 'is a URL; give the hostname only, without a scheme';
  if (entry.includes('/')) return 'contains a path; give the hostname only';
  if (entry.includes('@')) return 'contains credentials; give the hostname only';
  if (IPV4.test(entry) || IPV6ISH.test(entry)) return 'is an IP literal; only hostnames are allowed';
  if (entry.includes(':')) return 'contains a port; give the hostname only';
  if (entry.includes('**')) return "uses '**'; only a single leading '*.' wildcard is allowed";
  const name = normalize(entry);
  if (name === '*') return "is a bare '*'; only '*.domain' wildcards are allowed";
  const wildcard = name.startsWith('*.');
  const rest = wildcard ? name.slice(2) : name;
  if (rest.includes('*')) return "has a wildcard that is not the whole first label; only '*.domain' wildcards are allowed";
  if (name.length > MAX_NAME_LENGTH) return `is longer than ${MAX_NAME_LENGTH} characters`;
  const labels = rest.split('.');
  const labelError = labelsError(labels);
  if (labelError) return labelError;
  if (labels.length < 2)
    return wildcard ? "wildcard must sit under a name of at least two labels ('*.example.com')" : 'must have at least two labels';
  return undefined;
}

/** Whether `name` is a syntactically valid hostname (already normalized). */
function validName(name: string): boolean {
  return name.length > 0 && name.length <= MAX_NAME_LENGTH && labelsError(name.split('.')) === undefined;
}

/**
 * Whether `name` is covered by any of `patterns`. Case-insensitive; one trailing dot on either
 * side is ignored. `*.example.com` matches exactly one extra label (`a.example.com`), never
 * `example.com` nor `a.b.example.com`. Patterns that fail `allowlistEntryError` never match, and
 * neither does a `name` that is not a valid hostname.
 */
export function hostnameAllowed(name: string, patterns: readonly string[]): boolean {
  const host = normalize(name);
  if (!validName(host)) return false;
  for (const raw of patterns) {
    if (allowlistEntryError(raw) !== undefined) continue;
    const pattern = normalize(raw);
    if (pattern.startsWith('*.')) {
      const suffix = pattern.slice(1); // '.example.com'
      if (host.endsWith(suffix)) {
        const head = host.slice(0, host.length - suffix.length);
        if (head.length > 0 && !head.includes('.')) return true;
      }
    } else if (host === pattern) {
      return true;
    }
  }
  return false;
}

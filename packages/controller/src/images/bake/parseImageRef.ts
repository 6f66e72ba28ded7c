import { isAbsolute, normalize } from 'node:path';
import { BakeError } from './BakeError.js';
import { SHA256_DIGEST_RE } from './digest.js';

/** A registry image: `host` is what we connect to (`registry-1.docker.io` for docker.io), `hostKey` what the user wrote. */
export interface RegistryRef {
  kind: 'registry';
  /** Host and optional port as written (docker.io, localhost:5000): matched against insecureRegistries and passed to `credentials`. */
  hostKey: string;
  /** Host and optional port actually contacted. */
  host: string;
  repository: string;
  tag?: string;
  digest?: string;
}

export interface OciLayoutRef {
  kind: 'oci-layout';
  dir: string;
  tag?: string;
}

export interface DockerArchiveRef {
  kind: 'docker-archive';
  path: string;
  /** Optional `repo:tag` picking one image of an archive that holds several. */
  reference?: string;
}

export type ParsedImageRef = RegistryRef | OciLayoutRef | DockerArchiveRef;

const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
// One repository path component, as in the distribution spec.
const REPO_COMPONENT_RE = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const HOST_RE =
  /^(?:localhost|\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::(\d{1,5}))?$/;

function invalid(ref: string, why: string): never {
  throw new BakeError('INVALID_SOURCE', `invalid image reference "${ref}": ${why}`);
}

/** Splits `oci:`/`docker-archive:` refs like skopeo does: the path ends at the first ':' after the transport. */
function splitPathAndRest(ref: string, body: string): { path: string; rest?: string } {
  const colon = body.indexOf(':');
  const path = colon === -1 ? body : body.slice(0, colon);
  const rest = colon === -1 ? undefined : body.slice(colon + 1);
  if (!path) invalid(ref, 'missing path');
  if (!isAbsolute(path)) invalid(ref, `path must be absolute, got "${path}"`);
  if (rest === '') invalid(ref, 'empty name after ":"');
  return { path: normalize(path), ...(rest !== undefined ? { rest } : {}) };
}

/**
 * Parses the `ref` of an `{ type: 'oci' }` source. Registry refs follow docker's normalisation: a
 * first component without '.', ':' or "localhost" is a docker.io repository, single names get
 * `library/`, and the tag defaults to `latest` unless a digest pins the manifest.
 */
export function parseImageRef(ref: string): ParsedImageRef {
  if (typeof ref !== 'string' || ref.trim() !== ref || ref === '') invalid(String(ref), 'empty or surrounded by whitespace');
  if (ref.startsWith('oci:')) {
    const { path, rest } = splitPathAndRest(ref, ref.slice('oci:'.length));
    if (rest !== undefined && /[\s]/.test(rest)) invalid(ref, 'tag contains whitespace');
    return { kind: 'oci-layout', dir: path, ...(rest !== undefined ? { tag: rest } : {}) };
  }
  if (ref.startsWith('docker-archive:')) {
    const { path, rest } = splitPathAndRest(ref, ref.slice('docker-archive:'.length));
    return { kind: 'docker-archive', path, ...(rest !== undefined ? { reference: rest } : {}) };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(ref)) invalid(ref, 'no URL scheme expected (write HOST[:PORT]/REPO[:TAG|@sha256:HEX])');
  return parseRegistryRef(ref);
}

function parseRegistryRef(ref: string): RegistryRef {
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!SHA256_DIGEST_RE.test(digest)) invalid(ref, `digest must be sha256:<64 lowercase hex>, got "${digest}"`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const tagColon = rest.indexOf(':', lastSlash + 1);
  if (tagColon !== -1) {
    tag = rest.slice(tagColon + 1);
    rest = rest.slice(0, tagColon);
    if (!TAG_RE.test(tag)) invalid(ref, `bad tag "${tag}"`);
  }
  const parts = rest.split('/');
  let hostKey = 'docker.io';
  const first = parts[0] ?? '';
  if (parts.length > 1 && (first.includes('.') || first.includes(':') || first === 'localhost' || first.startsWith('['))) {
    hostKey = first;
    parts.shift();
    const m = HOST_RE.exec(hostKey);
    if (!m) invalid(ref, `bad registry host "${hostKey}"`);
    if (m[1] !== undefined) {
      const port = Number(m[1]);
      if (port < 1 || port > 65535) invalid(ref, `bad port ${m[1]}`);
    }
  }
  if (parts.length === 0 || parts.some((p) => !REPO_COMPONENT_RE.test(p))) {
    invalid(ref, `bad repository "${parts.join('/')}" (lowercase letters, digits and . _ - separated by /)`);
  }
  let host = hostKey;
  if (hostKey === 'docker.io' || hostKey === 'index.docker.io' || hostKey === 'registry-1.docker.io') {
    hostKey = 'docker.io';
    host = 'registry-1.docker.io';
    if (parts.length === 1) parts.unshift('library');
  }
  const repository = parts.join('/');
  if (repository.length > 255) invalid(ref, 'repository name longer than 255 characters');
  if (!tag && !digest) tag = 'latest';
  return { kind: 'registry', hostKey, host, repository, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

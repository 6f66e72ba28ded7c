import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allowlistEntryError, hostnameAllowed, REGISTRY_HOSTNAMES } from '../src/index.js';

test('plain hostnames and first-level wildcards are valid allowlist entries', () => {
  for (const entry of ['example.com', 'pypi.org', 'a-b.example.co.uk', 'Example.COM', 'example.com.', '*.example.com', 'x1.y2.z3'])
    assert.equal(allowlistEntryError(entry), undefined, entry);
  assert.equal(allowlistEntryError(`${'a'.repeat(63)}.com`), undefined);
});

test('URLs, wildcards out of place, bad lengths, bad characters and IP literals are rejected with a reason', () => {
  const bad: Record<string, RegExp> = {
    '': /empty/,
    'https://example.com': /URL/,
    'example.com/path': /path/,
    'example.com:443': /port/,
    'user@example.com': /credentials/,
    '**.example.com': /\*\*/,
    '*.**.example.com': /\*\*/,
    '*': /bare/,
    '*.': /bare/,
    'a.*.com': /first label/,
    'foo*.com': /first label/,
    '*foo.example.com': /first label/,
    '*.com': /two labels/,
    localhost: /two labels/,
    [`${'a'.repeat(64)}.com`]: /63/,
    [`${'abcdefghi.'.repeat(25)}example.com`]: /253/,
    'a..example.com': /empty label/,
    '.example.com': /empty label/,
    'exa_mple.com': /letters, digits/,
    '-example.com': /letters, digits/,
    'example-.com': /letters, digits/,
    'ex ample.com': /whitespace/,
    'exämple.com': /letters, digits/,
    '10.0.0.1': /IP literal/,
    '::1': /IP literal/,
    '[2001:db8::1]': /IP literal/,
    'example.123': /all-numeric/,
  };
  for (const [entry, reason] of Object.entries(bad)) {
    const error = allowlistEntryError(entry);
    assert.ok(error, `${JSON.stringify(entry)} should be rejected`);
    assert.match(error, reason, `${JSON.stringify(entry)}: ${error}`);
  }
});

test('every registry hostname is itself a valid entry, and the list covers the documented registries', () => {
  for (const h of REGISTRY_HOSTNAMES) assert.equal(allowlistEntryError(h), undefined, h);
  assert.equal(new Set(REGISTRY_HOSTNAMES).size, REGISTRY_HOSTNAMES.length);
  for (const h of [
    'pypi.org',
    'files.pythonhosted.org',
    'registry.npmjs.org',
    'registry.yarnpkg.com',
    'crates.io',
    'static.crates.io',
    'index.crates.io',
    'repo.maven.apache.org',
    'repo1.maven.org',
    'rubygems.org',
    'index.rubygems.org',
    'huggingface.co',
    'cdn-lfs.huggingface.co',
    'deb.debian.org',
    'security.debian.org',
    'archive.ubuntu.com',
    'security.ubuntu.com',
    'dl-cdn.alpinelinux.org',
  ])
    assert.ok(hostnameAllowed(h, REGISTRY_HOSTNAMES), h);
  assert.ok(hostnameAllowed('cas-bridge.hf.co', REGISTRY_HOSTNAMES));
  assert.equal(hostnameAllowed('github.com', REGISTRY_HOSTNAMES), false);
  assert.ok(Object.isFrozen(REGISTRY_HOSTNAMES));
});

test('matching is case-insensitive and ignores one trailing dot on either side', () => {
  assert.ok(hostnameAllowed('PyPI.org', ['pypi.org']));
  assert.ok(hostnameAllowed('pypi.org.', ['pypi.org']));
  assert.ok(hostnameAllowed('pypi.org', ['PYPI.ORG.']));
  assert.ok(hostnameAllowed('A.Example.Com.', ['*.EXAMPLE.com']));
  assert.equal(hostnameAllowed('pypi.org', ['pypi.org.evil.com']), false);
  assert.equal(hostnameAllowed('pypi.org.evil.com', ['pypi.org']), false);
  assert.equal(hostnameAllowed('evilpypi.org', ['pypi.org']), false);
});

test("'*.example.com' matches exactly one extra label", () => {
  const p = ['*.example.com'];
  assert.ok(hostnameAllowed('a.example.com', p));
  assert.equal(hostnameAllowed('example.com', p), false);
  assert.equal(hostnameAllowed('a.b.example.com', p), false);
  assert.equal(hostnameAllowed('aexample.com', p), false);
  assert.equal(hostnameAllowed('.example.com', p), false);
  assert.equal(hostnameAllowed('a.example.com.evil.org', p), false);
});

test('invalid patterns never match and invalid names are never allowed', () => {
  assert.equal(hostnameAllowed('anything.com', ['*']), false);
  assert.equal(hostnameAllowed('a.b.example.com', ['**.example.com']), false);
  assert.equal(hostnameAllowed('example.com', ['https://example.com']), false);
  assert.equal(hostnameAllowed('10.0.0.1', ['10.0.0.1']), false);
  assert.equal(hostnameAllowed('*.example.com', ['*.example.com']), false);
  assert.equal(hostnameAllowed('', ['example.com']), false);
  assert.equal(hostnameAllowed('a..example.com', ['*.example.com']), false);
  assert.equal(hostnameAllowed('example.com', []), false);
});

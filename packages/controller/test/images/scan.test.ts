/**
 * The image scanner on real ext4 images: `before` writes a Debian-like and an Alpine-like root
 * filesystem to temp directories and bakes each into an ext4 file with `mkfs.ext4 -d` (e2fsprogs),
 * exactly what the bake pipeline produces, and writes an OSV advisory set with records that must
 * match and records that must not (fixed below the installed version, another release, another
 * ecosystem, withdrawn, outside every range, GIT-only). Everything lives under one temp directory
 * removed in `after`, whatever happened.
 *
 * Trivy itself is not installed here and cannot be: its JSON mapping is checked against a report
 * written from Trivy's documented schema-2 output (fixtures/trivy-rootfs-report.json), and the
 * scan path (extract the image, run `trivy rootfs`, map) against a stand-in script that checks
 * its arguments and the extracted tree and prints that report.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cvss3BaseScore } from '../../src/images/scan/Cvss3.js';
import { chooseScanner, findOnPath } from '../../src/images/scan/chooseScanner.js';
import { DirRootfsReader } from '../../src/images/scan/DirRootfsReader.js';
import { Ext4RootfsReader } from '../../src/images/scan/Ext4RootfsReader.js';
import { OsvAdvisories } from '../../src/images/scan/OsvAdvisories.js';
import { UnsafeRootfsPathError } from '../../src/images/scan/RootfsReader.js';
import { collectSbom } from '../../src/images/scan/Sbom.js';
import { NO_ADVISORIES_NOTE, SbomScanner } from '../../src/images/scan/SbomScanner.js';
import type { ScanResult } from '../../src/images/scan/Scanner.js';
import { mapTrivyReport, TrivyScanner } from '../../src/images/scan/TrivyScanner.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const SHA = 'a'.repeat(64);

const DPKG_STATUS = `Package: openssl
Status: install ok installed
Priority: optional
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u1
Description: Secure Sockets Layer toolkit - cryptographic utility
 This package is part of the OpenSSL project's implementation.
 .
 It contains the general-purpose command line binary.

Package: libssl3
Status: install ok installed
Architecture: amd64
Source: openssl
Version: 3.0.11-1~deb12u1

Package: zlib1g
Status: install ok installed
Architecture: amd64
Source: zlib
Version: 1:1.2.13.dfsg-1

Package: bash
Essential: yes
Status: install ok installed
Architecture: amd64
Source: bash (5.2.15-2)
Version: 5.2.15-2+b2

Package: oldpkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0-1
`;

const APK_INSTALLED = `C:Q1abc=
P:musl
V:1.2.5-r0
A:x86_64
o:musl

C:Q1def=
P:libcrypto3
V:3.3.1-r0
A:x86_64
o:openssl

C:Q1ghi=
P:libssl3
V:3.3.1-r0
o:openssl

P:busybox
V:1.36.1-r29
o:busybox
`;

/** OSV records: ids starting with MATCH- or real ids must be found; NOPE- ids never. */
const ADVISORIES = [
  // Debian, keyed by source package; no severity anywhere → unknown. Matches openssl and libssl3.
  {
    id: 'DEBIAN-CVE-2024-0727',
    aliases: ['CVE-2024-0727'],
    summary: 'openssl: denial of service via null dereference',
    affected: [
      {
        package: { ecosystem: 'Debian:12', name: 'openssl' },
        ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '3.0.13-1~deb12u1' }] }],
      },
    ],
  },
  // Release-less ecosystem `Debian` applies to Debian:12; last_affected is inclusive; CVSS scope changed 10.0.
  {
    id: 'MATCH-ZLIB-LAST-AFFECTED',
    details: 'zlib up to and including 1:1.2.13.dfsg-1.\nMore text.',
    severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H' }],
    affected: [
      {
        package: { ecosystem: 'Debian', name: 'zlib' },
        ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '1:1.2.0' }, { last_affected: '1:1.2.13.dfsg-1' }] }],
      },
    ],
  },
  // npm with only a CVSS vector (7.2 → high).
  {
    id: 'GHSA-35jh-r3h4-6jhm',
    aliases: ['CVE-2021-23337'],
    summary: 'Command Injection in lodash',
    severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H' }],
    affected: [
      { package: { ecosystem: 'npm', name: 'lodash' }, ranges: [{ type: 'SEMVER', events: [{ introduced: '0' }, { fixed: '4.17.21' }] }] },
    ],
  },
  // A scoped npm package, stated severity wins over the vector.
  {
    id: 'GHSA-67hx-6x53-jw92',
    summary: 'Babel vulnerable to arbitrary code execution when compiling specifically crafted malicious code',
    severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:H/I:N/A:N' }],
    database_specific: { severity: 'CRITICAL' },
    affected: [
      {
        package: { ecosystem: 'npm', name: '@babel/traverse' },
        ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '7.23.2' }] }],
      },
      {
        package: { ecosystem: 'npm', name: '@babel/traverse' },
        ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '8.0.0-alpha.0' }, { fixed: '8.0.0-alpha.4' }] }],
      },
    ],
  },
  // Nested node_modules (npm's own semver); 5.3 → medium.
  {
    id: 'GHSA-c2qf-rxjj-qqgw',
    severity: [{ type: 'CVSS_V3', score: 'CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L' }],
    affected: [
      {
        package: { ecosystem: 'npm', name: 'semver' },
        ranges: [{ type: 'SEMVER', events: [{ introduced: '7.0.0' }, { fixed: '7.5.2' }] }],
      },
    ],
  },
  // PyPI, GHSA's MODERATE → medium.
  {
    id: 'GHSA-j8r2-6x86-q33q',
    aliases: ['CVE-2023-32681', 'PYSEC-2023-74'],
    summary: 'Unintended leak of Proxy-Authorization header in requests',
    database_specific: { severity: 'MODERATE' },
    affected: [
      {
        package: { ecosystem: 'PyPI', name: 'requests' },
        ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '2.3.0' }, { fixed: '2.31.0' }] }],
      },
    ],
  },
  // An exact versions[] list, with a name spelled differently from the METADATA (`Jinja2`).
  {
    id: 'MATCH-JINJA-VERSIONS',
    database_specific: { severity: 'low' },
    affected: [{ package: { ecosystem: 'PyPI', name: 'JINJA2' }, versions: ['3.1.1', '3.1.2'] }],
  },
  // Alpine, keyed by origin; per-package ecosystem_specific severity.
  {
    id: 'ALPINE-CVE-2024-5535',
    affected: [
      {
        package: { ecosystem: 'Alpine:v3.20', name: 'openssl' },
        ecosystem_specific: { severity: 'high' },
        ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '3.3.1-r1' }] }],
      },
    ],
  },
  // --- must not match ---
  {
    id: 'NOPE-FIXED-BELOW',
    affected: [
      {
        package: { ecosystem: 'Debian:12', name: 'openssl' },
        ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { fixed: '3.0.9-1' }] }],
      },
    ],
  },
  {
    id: 'NOPE-OTHER-RELEASE',
    affected: [{ package: { ecosystem: 'Debian:11', name: 'openssl' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }] }] }],
  },
  {
    id: 'NOPE-OTHER-ECOSYSTEM',
    affected: [{ package: { ecosystem: 'PyPI', name: 'lodash' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }] }] }],
  },
  {
    id: 'NOPE-WITHDRAWN',
    withdrawn: '2023-06-01T00:00:00Z',
    affected: [{ package: { ecosystem: 'PyPI', name: 'requests' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }] }] }],
  },
  {
    id: 'NOPE-NOT-YET',
    affected: [
      {
        package: { ecosystem: 'PyPI', name: 'requests' },
        ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '2.26.0' }, { fixed: '2.27.0' }] }],
      },
    ],
  },
  {
    id: 'NOPE-PAST-LAST',
    affected: [
      {
        package: { ecosystem: 'Debian:12', name: 'zlib' },
        ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }, { last_affected: '1:1.2.12' }] }],
      },
    ],
  },
  {
    id: 'NOPE-BETWEEN-RANGES',
    affected: [
      {
        package: { ecosystem: 'npm', name: 'lodash' },
        ranges: [{ type: 'SEMVER', events: [{ introduced: '1.0.0' }, { fixed: '2.0.0' }, { introduced: '5.0.0' }, { fixed: '5.1.0' }] }],
      },
    ],
  },
  {
    id: 'NOPE-GIT-ONLY',
    affected: [
      {
        package: { ecosystem: 'PyPI', name: 'six' },
        ranges: [{ type: 'GIT', repo: 'https://github.com/benjaminp/six', events: [{ introduced: '0' }] }],
      },
    ],
  },
  {
    id: 'NOPE-OTHER-ALPINE',
    affected: [{ package: { ecosystem: 'Alpine:v3.19', name: 'openssl' }, ranges: [{ type: 'ECOSYSTEM', events: [{ introduced: '0' }] }] }],
  },
  { id: 'NOPE-VERSIONS-LIST', affected: [{ package: { ecosystem: 'npm', name: 'lodash' }, versions: ['4.17.14', '4.17.16'] }] },
  { not: 'an OSV record' },
];

/** [id, package, severity, fixed] of every vulnerability the Debian image must show, in report order. */
const DEBIAN_EXPECTED: Array<[string, string, string | undefined, string | undefined]> = [
  ['GHSA-67hx-6x53-jw92', '@babel/traverse', 'critical', '7.23.2'],
  ['MATCH-ZLIB-LAST-AFFECTED', 'zlib1g', 'critical', undefined],
  ['GHSA-35jh-r3h4-6jhm', 'lodash', 'high', '4.17.21'],
  ['GHSA-c2qf-rxjj-qqgw', 'semver', 'medium', '7.5.2'],
  ['GHSA-j8r2-6x86-q33q', 'requests', 'medium', '2.31.0'],
  ['MATCH-JINJA-VERSIONS', 'jinja2', 'low', undefined],
  ['DEBIAN-CVE-2024-0727', 'libssl3', undefined, '3.0.13-1~deb12u1'],
  ['DEBIAN-CVE-2024-0727', 'openssl', undefined, '3.0.13-1~deb12u1'],
];

let work: string;
let debianRoot: string;
let debianImage: string;
let alpineImage: string;
let advisoryJson: string;
let outsideSecret: string;

async function put(root: string, path: string, content: string): Promise<void> {
  await mkdir(dirname(join(root, path)), { recursive: true });
  await writeFile(join(root, path), content);
}

function mkfs(rootDir: string, image: string): void {
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', rootDir, image, '32M'], { stdio: 'pipe' });
}

async function buildDebianRoot(root: string): Promise<void> {
  await put(
    root,
    'usr/lib/os-release',
    'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n',
  );
  // As on real Debian: /etc/os-release is a relative symlink, /lib a merged-usr symlink.
  await mkdir(join(root, 'etc'), { recursive: true });
  await symlink('../usr/lib/os-release', join(root, 'etc/os-release'));
  await symlink('usr/lib', join(root, 'lib'));
  await put(root, 'var/lib/dpkg/status', DPKG_STATUS);
  await put(
    root,
    'usr/lib/python3/dist-packages/requests-2.25.0.dist-info/METADATA',
    'Metadata-Version: 2.1\nName: requests\nVersion: 2.25.0\nSummary: Python HTTP for Humans.\n\nName: not-this\n',
  );
  await put(root, 'usr/lib/python3/dist-packages/requests-2.25.0.dist-info/RECORD', '');
  await put(
    root,
    'usr/local/lib/python3.11/site-packages/Jinja2-3.1.2.dist-info/METADATA',
    'Metadata-Version: 2.1\nName: Jinja2\nVersion: 3.1.2\n',
  );
  await put(root, 'usr/local/lib/python3.11/site-packages/six-1.16.0.egg-info', 'Metadata-Version: 1.2\nName: six\nVersion: 1.16.0\n');
  await put(
    root,
    'usr/local/lib/python3.11/site-packages/broken-1.0.dist-info/METADATA',
    'Metadata-Version: 2.1\nSummary: no name or version\n',
  );
  await put(root, 'usr/lib/node_modules/lodash/package.json', JSON.stringify({ name: 'lodash', version: '4.17.15' }));
  await put(root, 'usr/lib/node_modules/@babel/traverse/package.json', JSON.stringify({ name: '@babel/traverse', version: '7.23.0' }));
  await put(root, 'usr/lib/node_modules/npm/package.json', JSON.stringify({ name: 'npm', version: '10.2.4' }));
  await put(root, 'usr/lib/node_modules/npm/node_modules/semver/package.json', JSON.stringify({ name: 'semver', version: '7.5.1' }));
  await put(root, 'usr/lib/node_modules/npm/node_modules/bad/package.json', '{ not json');
  await put(root, 'usr/lib/node_modules/.bin/ignored', '');
  // Hostile bits: links that try to leave the root or loop, and a wide directory.
  await symlink('/proc/self/environ', join(root, 'etc/escape-absolute'));
  await symlink('../../../../../../../../etc/hostname', join(root, 'etc/escape-relative'));
  await symlink('/loop-b', join(root, 'loop-a'));
  await symlink('/loop-a', join(root, 'loop-b'));
  for (let i = 0; i < 30; i++) await put(root, `var/wide/f${String(i).padStart(2, '0')}`, String(i));
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'image-scan-'));
  debianRoot = join(work, 'debian-root');
  await buildDebianRoot(debianRoot);
  debianImage = join(work, `${SHA}.ext4`);
  mkfs(debianRoot, debianImage);

  const alpineRoot = join(work, 'alpine-root');
  await put(alpineRoot, 'etc/os-release', 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.3\n');
  await put(alpineRoot, 'lib/apk/db/installed', APK_INSTALLED);
  alpineImage = join(work, `${'b'.repeat(64)}.ext4`);
  mkfs(alpineRoot, alpineImage);

  advisoryJson = join(work, 'advisories.json');
  await writeFile(advisoryJson, JSON.stringify(ADVISORIES, null, 2));
  outsideSecret = join(work, 'outside-secret.txt');
  await writeFile(outsideSecret, 'host secret');
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

function summarize(result: ScanResult): Array<[string, string, string | undefined, string | undefined]> {
  return result.vulnerabilities.map((v) => [v.id, v.package, v.severity, v.fixed]);
}

describe('Ext4RootfsReader', () => {
  test('lists directories and reads files out of the image, following symlinks inside it', async () => {
    const reader = new Ext4RootfsReader(debianImage);
    const dpkg = await reader.list('/var/lib/dpkg');
    assert.deepEqual(dpkg, { entries: [{ name: 'status', type: 'file' }], truncated: false });
    assert.equal((await reader.readFile('/var/lib/dpkg/status'))?.toString(), DPKG_STATUS);
    // Final-component symlink (relative), then an intermediate one (/lib -> usr/lib).
    assert.match((await reader.readFile('/etc/os-release'))!.toString(), /VERSION_ID="12"/);
    assert.match((await reader.readFile('/lib/os-release'))!.toString(), /ID=debian/);
    assert.deepEqual((await reader.list('/lib/node_modules'))?.entries.map((e) => e.name).sort(), ['.bin', '@babel', 'lodash', 'npm']);
    const etc = await reader.list('/etc');
    assert.deepEqual(
      etc?.entries.find((e) => e.name === 'os-release'),
      { name: 'os-release', type: 'symlink' },
    );
  });

  test('missing paths, directories read as files and files listed as directories give undefined', async () => {
    const reader = new Ext4RootfsReader(debianImage);
    assert.equal(await reader.readFile('/nope'), undefined);
    assert.equal(await reader.readFile('/var/lib/dpkg'), undefined);
    assert.equal(await reader.list('/var/lib/dpkg/status'), undefined);
    assert.equal(await reader.list('/does/not/exist'), undefined);
  });

  test('symlinks cannot leave the image and loops end', async () => {
    const reader = new Ext4RootfsReader(debianImage);
    assert.equal(await reader.readFile('/etc/escape-absolute'), undefined);
    assert.equal(await reader.readFile('/etc/escape-relative'), undefined);
    assert.equal(await reader.readFile('/loop-a'), undefined);
  });

  test('a file that is not an ext4 image fails loudly instead of reading as empty', async () => {
    const notExt4 = join(work, 'not-ext4.ext4');
    await writeFile(notExt4, Buffer.alloc(64 * 1024));
    await assert.rejects(new Ext4RootfsReader(notExt4).readFile('/etc/os-release'), /cannot read ext4 image/);
    await assert.rejects(new SbomScanner().scan({ ext4Path: join(work, 'missing.ext4'), sha256: SHA }), /cannot read ext4 image/);
  });

  test('paths debugfs cannot be given safely are rejected', async () => {
    const reader = new Ext4RootfsReader(debianImage);
    await assert.rejects(reader.readFile('/etc/"; rdump / /tmp/x; "'), UnsafeRootfsPathError);
    await assert.rejects(reader.readFile('/etc/os-release\nrdump / /tmp/x'), UnsafeRootfsPathError);
    await assert.rejects(reader.list('/var"'), UnsafeRootfsPathError);
    await assert.rejects(reader.readFile('etc/os-release'), UnsafeRootfsPathError);
  });

  test('reads are bounded: big files are skipped, listings truncated', async () => {
    const reader = new Ext4RootfsReader(debianImage, { maxFileBytes: 64, maxEntries: 10 });
    assert.equal(await reader.readFile('/var/lib/dpkg/status'), undefined);
    assert.equal((await reader.readFile('/var/wide/f07'))?.toString(), '7');
    const wide = await reader.list('/var/wide');
    assert.equal(wide?.entries.length, 10);
    assert.equal(wide?.truncated, true);
  });
});

describe('DirRootfsReader', () => {
  test('symlinks pointing outside the root are not followed out of it', async () => {
    const root = join(work, 'dir-root');
    await put(root, 'etc/hostname', 'in-root\n');
    await symlink(outsideSecret, join(root, 'secret-absolute'));
    await symlink('../outside-secret.txt', join(root, 'secret-relative'));
    await symlink(work, join(root, 'outside-dir'));
    await symlink('/etc/hostname', join(root, 'hostname-link'));
    await mkdir(join(root, 'sub'));
    await symlink('../../../../../../etc/hostname', join(root, 'sub/climb'));
    execFileSync('mkfifo', [join(root, 'fifo')]);
    const reader = new DirRootfsReader(root);

    assert.equal(await reader.readFile('/secret-absolute'), undefined);
    assert.equal(await reader.readFile('/secret-relative'), undefined);
    assert.equal(await reader.readFile('/outside-dir/outside-secret.txt'), undefined);
    assert.equal(await reader.list('/outside-dir'), undefined);
    assert.equal(await reader.readFile('/../outside-secret.txt'), undefined);
    // Absolute and climbing links resolve inside the root, like in a chroot: the image's file, not the host's.
    assert.equal((await reader.readFile('/hostname-link'))?.toString(), 'in-root\n');
    assert.equal((await reader.readFile('/sub/climb'))?.toString(), 'in-root\n');
    // A FIFO is not a file: no hang, no read.
    assert.equal(await reader.readFile('/fifo'), undefined);
  });

  test('collects the same packages from the unpacked tree as from the ext4 image', async () => {
    const fromDir = await collectSbom(new DirRootfsReader(debianRoot));
    const fromImage = await collectSbom(new Ext4RootfsReader(debianImage));
    const key = (s: typeof fromDir) => s.packages.map((p) => `${p.ecosystem} ${p.name} ${p.version}`).sort();
    assert.deepEqual(key(fromDir), key(fromImage));
    assert.equal(fromDir.packages.length, 11);
  });

  test('listings stop at maxEntries', async () => {
    const reader = new DirRootfsReader(debianRoot, { maxEntries: 5 });
    const wide = await reader.list('/var/wide');
    assert.equal(wide?.entries.length, 5);
    assert.equal(wide?.truncated, true);
  });
});

describe('collectSbom', () => {
  test('Debian image: dpkg (installed only, with source packages), Python and npm', async () => {
    const sbom = await collectSbom(new Ext4RootfsReader(debianImage));
    assert.deepEqual(sbom.os, { id: 'debian', versionId: '12' });
    const packages = sbom.packages.map((p) => ({ ecosystem: p.ecosystem, name: p.name, version: p.version, source: p.source }));
    assert.deepEqual(
      packages.sort((a, b) => (a.name < b.name ? -1 : 1)),
      [
        { ecosystem: 'npm', name: '@babel/traverse', version: '7.23.0', source: undefined },
        { ecosystem: 'Debian:12', name: 'bash', version: '5.2.15-2+b2', source: { name: 'bash', version: '5.2.15-2' } },
        { ecosystem: 'PyPI', name: 'jinja2', version: '3.1.2', source: undefined },
        { ecosystem: 'Debian:12', name: 'libssl3', version: '3.0.11-1~deb12u1', source: { name: 'openssl', version: '3.0.11-1~deb12u1' } },
        { ecosystem: 'npm', name: 'lodash', version: '4.17.15', source: undefined },
        { ecosystem: 'npm', name: 'npm', version: '10.2.4', source: undefined },
        { ecosystem: 'Debian:12', name: 'openssl', version: '3.0.11-1~deb12u1', source: { name: 'openssl', version: '3.0.11-1~deb12u1' } },
        { ecosystem: 'PyPI', name: 'requests', version: '2.25.0', source: undefined },
        { ecosystem: 'npm', name: 'semver', version: '7.5.1', source: undefined },
        { ecosystem: 'PyPI', name: 'six', version: '1.16.0', source: undefined },
        { ecosystem: 'Debian:12', name: 'zlib1g', version: '1:1.2.13.dfsg-1', source: { name: 'zlib', version: '1:1.2.13.dfsg-1' } },
      ],
    );
    assert.ok(!sbom.packages.some((p) => p.name === 'oldpkg'), 'a deinstalled package does not count');
    assert.deepEqual(sbom.notes, []);
  });

  test('Alpine image: apk database with origins, ecosystem Alpine:v3.20', async () => {
    const sbom = await collectSbom(new Ext4RootfsReader(alpineImage));
    assert.deepEqual(
      sbom.packages.map((p) => [p.ecosystem, p.name, p.version, p.source?.name]),
      [
        ['Alpine:v3.20', 'musl', '1.2.5-r0', undefined],
        ['Alpine:v3.20', 'libcrypto3', '3.3.1-r0', 'openssl'],
        ['Alpine:v3.20', 'libssl3', '3.3.1-r0', 'openssl'],
        ['Alpine:v3.20', 'busybox', '1.36.1-r29', undefined],
      ],
    );
  });

  test('the file budget is reported when it runs out', async () => {
    const sbom = await collectSbom(new DirRootfsReader(debianRoot), undefined, { maxPackageFiles: 2 });
    assert.ok(
      sbom.notes.some((n) => n.includes('budget')),
      sbom.notes.join(),
    );
    assert.ok(sbom.packages.length < 11);
  });
});

describe('OsvAdvisories', () => {
  test('a JSON array, NDJSON and a directory of records load the same', async () => {
    const ndjson = join(work, 'advisories.ndjson');
    await writeFile(ndjson, `${ADVISORIES.map((r) => JSON.stringify(r)).join('\n')}\n`);
    const dir = join(work, 'advisories.d');
    await mkdir(dir);
    for (const [i, r] of ADVISORIES.entries()) await writeFile(join(dir, `${String(i).padStart(3, '0')}.json`), JSON.stringify(r, null, 2));
    await writeFile(join(dir, 'README.txt'), 'not an advisory');
    const loaded = await Promise.all([advisoryJson, ndjson, dir].map((p) => OsvAdvisories.load(p)));
    const query = { ecosystem: 'Debian:12', name: 'openssl', version: '3.0.11-1~deb12u1' };
    for (const a of loaded) {
      // Every record with an id and a package, minus the withdrawn one.
      assert.equal(a.size, ADVISORIES.length - 2);
      assert.deepEqual(
        a.match(query).map((m) => m.id),
        ['DEBIAN-CVE-2024-0727'],
      );
    }
  });

  test('a single pretty-printed record file loads', async () => {
    const single = join(work, 'single.json');
    await writeFile(single, JSON.stringify(ADVISORIES[2], null, 2));
    const a = await OsvAdvisories.load(single);
    assert.deepEqual(
      a.match({ ecosystem: 'npm', name: 'lodash', version: '4.17.20' }).map((m) => [m.id, m.fixed, m.severity, m.aliases]),
      [['GHSA-35jh-r3h4-6jhm', '4.17.21', 'high', ['CVE-2021-23337']]],
    );
    assert.deepEqual(a.match({ ecosystem: 'npm', name: 'lodash', version: '4.17.21' }), []);
  });

  test('range edges: introduced is inclusive, fixed exclusive, last_affected inclusive', () => {
    const a = OsvAdvisories.fromRecords(ADVISORIES);
    const ids = (name: string, version: string, ecosystem = 'PyPI') => a.match({ ecosystem, name, version }).map((m) => m.id);
    assert.deepEqual(ids('requests', '2.3.0'), ['GHSA-j8r2-6x86-q33q']);
    assert.deepEqual(ids('requests', '2.2.9'), []);
    assert.deepEqual(ids('requests', '2.31.0rc1'), ['GHSA-j8r2-6x86-q33q']);
    assert.deepEqual(ids('requests', '2.31.0'), []);
    assert.deepEqual(ids('requests', '2.26.1'), ['GHSA-j8r2-6x86-q33q', 'NOPE-NOT-YET']);
    assert.deepEqual(ids('zlib', '1:1.2.13.dfsg-1', 'Debian:12'), ['MATCH-ZLIB-LAST-AFFECTED']);
    assert.deepEqual(ids('zlib', '1:1.2.13.dfsg-1+deb12u1', 'Debian:12'), []);
    assert.deepEqual(ids('zlib', '1:1.2.12', 'Debian:12'), ['MATCH-ZLIB-LAST-AFFECTED', 'NOPE-PAST-LAST']);
    assert.deepEqual(ids('lodash', '1.5.0', 'npm'), ['GHSA-35jh-r3h4-6jhm', 'NOPE-BETWEEN-RANGES']);
    assert.deepEqual(ids('lodash', '4.17.16', 'npm'), ['GHSA-35jh-r3h4-6jhm', 'NOPE-VERSIONS-LIST']);
    // Two affected[] entries of one record: reported once, with the fix of the range that matched.
    assert.deepEqual(
      a.match({ ecosystem: 'npm', name: '@babel/traverse', version: '8.0.0-alpha.1' }).map((m) => [m.id, m.fixed]),
      [['GHSA-67hx-6x53-jw92', '8.0.0-alpha.4']],
    );
  });

  test('CVSS v3 base scores match the specification', () => {
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'), 9.8);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H'), 10);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H'), 7.2);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N'), 6.1);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H'), 8.8);
    assert.equal(cvss3BaseScore('CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:N'), 5.3);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H'), 5.5);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N'), 1.6);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N'), 0);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:U/RL:O'), 9.8);
    assert.equal(cvss3BaseScore('AV:N/AC:L/Au:N/C:P/I:N/A:N'), undefined);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H'), undefined);
    assert.equal(cvss3BaseScore('CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H'), undefined);
  });
});

describe('SbomScanner', () => {
  test('Debian image: exactly the expected advisories, severities and counts', async () => {
    const scanner = new SbomScanner({ advisoryPath: advisoryJson });
    const result = await scanner.scan({ ext4Path: debianImage, sha256: SHA });
    assert.equal(result.scanner, 'scaibunker-sbom');
    assert.ok(Math.abs(Date.parse(result.scanned_at) - Date.now()) < 60_000);
    assert.equal(result.packages, 11);
    assert.deepEqual(summarize(result), DEBIAN_EXPECTED);
    assert.deepEqual(result.counts, { critical: 2, high: 1, medium: 2, low: 1, unknown: 2 });
    assert.equal(result.note, undefined);
    const lodash = result.vulnerabilities.find((v) => v.package === 'lodash')!;
    assert.deepEqual(lodash, {
      id: 'GHSA-35jh-r3h4-6jhm',
      aliases: ['CVE-2021-23337'],
      package: 'lodash',
      ecosystem: 'npm',
      installed: '4.17.15',
      fixed: '4.17.21',
      severity: 'high',
      summary: 'Command Injection in lodash',
    });
    const zlib = result.vulnerabilities.find((v) => v.package === 'zlib1g')!;
    assert.equal(zlib.ecosystem, 'Debian:12');
    assert.equal(zlib.installed, '1:1.2.13.dfsg-1');
    assert.equal(zlib.summary, 'zlib up to and including 1:1.2.13.dfsg-1.');
  });

  test('Alpine image: matched through the origin package', async () => {
    const result = await new SbomScanner({ advisoryPath: advisoryJson }).scan({ ext4Path: alpineImage, sha256: 'b'.repeat(64) });
    assert.equal(result.packages, 4);
    assert.deepEqual(summarize(result), [
      ['ALPINE-CVE-2024-5535', 'libcrypto3', 'high', '3.3.1-r1'],
      ['ALPINE-CVE-2024-5535', 'libssl3', 'high', '3.3.1-r1'],
    ]);
    assert.deepEqual(result.counts, { critical: 0, high: 2, medium: 0, low: 0, unknown: 0 });
  });

  test('without an advisory database: packages counted, no vulnerabilities, and it says so', async () => {
    const result = await new SbomScanner().scan({ ext4Path: debianImage, sha256: SHA });
    assert.equal(result.packages, 11);
    assert.deepEqual(result.vulnerabilities, []);
    assert.deepEqual(result.counts, { critical: 0, high: 0, medium: 0, low: 0, unknown: 0 });
    assert.equal(result.note, NO_ADVISORIES_NOTE);
    assert.match(result.note ?? '', /no advisory database configured/);
  });

  test('a broken advisory file fails the scan instead of reporting a clean image', async () => {
    const broken = join(work, 'broken.json');
    await writeFile(broken, '[{"id": "X", ');
    await assert.rejects(new SbomScanner({ advisoryPath: broken }).scan({ ext4Path: debianImage, sha256: SHA }), /not valid JSON/);
    await assert.rejects(
      new SbomScanner({ advisoryPath: join(work, 'missing.json') }).scan({ ext4Path: debianImage, sha256: SHA }),
      /ENOENT/,
    );
  });

  test('an aborted scan rejects', async () => {
    const controller = new AbortController();
    controller.abort();
    await assert.rejects(new SbomScanner().scan({ ext4Path: debianImage, sha256: SHA }, controller.signal), { name: 'AbortError' });
    const midway = new AbortController();
    const scanning = new SbomScanner().scan({ ext4Path: debianImage, sha256: SHA }, midway.signal);
    setTimeout(() => midway.abort(), 5);
    await assert.rejects(scanning, { name: 'AbortError' });
  });
});

describe('Trivy', () => {
  test('its JSON report maps to a ScanResult', async () => {
    const report = JSON.parse(await readFile(join(FIXTURES, 'trivy-rootfs-report.json'), 'utf8'));
    const result = mapTrivyReport(report, new Date('2024-05-02T10:00:00Z'));
    assert.equal(result.scanner, 'trivy');
    assert.equal(result.scanned_at, '2024-05-02T10:00:00.000Z');
    assert.equal(result.packages, 6);
    assert.deepEqual(result.counts, { critical: 1, high: 1, medium: 3, low: 0, unknown: 1 });
    assert.deepEqual(result.vulnerabilities, [
      {
        id: 'CVE-2023-45853',
        package: 'zlib1g',
        ecosystem: 'Debian:12',
        installed: '1:1.2.13.dfsg-1',
        severity: 'critical',
        summary: 'zlib: integer overflow and resultant heap-based buffer overflow in zipOpenNewFileInZip4_6',
      },
      {
        id: 'CVE-2021-23337',
        package: 'lodash',
        ecosystem: 'npm',
        installed: '4.17.15',
        fixed: '4.17.21',
        severity: 'high',
        summary: 'nodejs-lodash: command injection via template',
      },
      {
        id: 'CVE-2023-32681',
        package: 'requests',
        ecosystem: 'PyPI',
        installed: '2.25.0',
        fixed: '2.31.0',
        severity: 'medium',
        summary: 'python-requests: Unintended leak of Proxy-Authorization header',
      },
      {
        id: 'CVE-2024-0727',
        aliases: ['DSA-5678-1'],
        package: 'libssl3',
        ecosystem: 'Debian:12',
        installed: '3.0.11-1~deb12u1',
        fixed: '3.0.13-1~deb12u1',
        severity: 'medium',
        summary: 'openssl: denial of service via null dereference',
      },
      {
        id: 'CVE-2024-0727',
        aliases: ['DSA-5678-1'],
        package: 'openssl',
        ecosystem: 'Debian:12',
        installed: '3.0.11-1~deb12u1',
        fixed: '3.0.13-1~deb12u1',
        severity: 'medium',
        summary: 'openssl: denial of service via null dereference',
      },
      {
        id: 'CVE-2011-3374',
        package: 'zlib1g',
        ecosystem: 'Debian:12',
        installed: '1:1.2.13.dfsg-1',
        summary: 'An invented finding with no title and a severity trivy could not rate.',
      },
    ]);
  });

  test('a report without Packages counts vulnerable packages and says so; garbage maps to nothing', () => {
    const result = mapTrivyReport({
      Results: [{ Type: 'npm', Vulnerabilities: [{ VulnerabilityID: 'X', PkgName: 'a', InstalledVersion: '1.0.0', Severity: 'LOW' }] }],
    });
    assert.equal(result.packages, 1);
    assert.match(result.note ?? '', /vulnerable packages only/);
    assert.deepEqual(mapTrivyReport('nonsense').vulnerabilities, []);
  });

  test('chooseScanner picks the SBOM scanner when trivy is not on PATH', () => {
    assert.equal(findOnPath('trivy'), undefined, 'trivy is not installed in this environment');
    const scanner = chooseScanner({ advisoryPath: advisoryJson });
    assert.ok(scanner instanceof SbomScanner);
    assert.equal(scanner.name, 'scaibunker-sbom');
    assert.ok(chooseScanner({ trivyPath: join(work, 'no-such-trivy') }) instanceof SbomScanner);
    assert.ok(chooseScanner({}) instanceof SbomScanner);
  });

  test('with a trivy binary, chooseScanner picks it; scan unpacks the image, runs trivy rootfs and maps its report', async () => {
    // A stand-in for trivy: checks the command line and the unpacked tree, then prints the recorded report.
    const bin = join(work, 'bin');
    await mkdir(bin);
    const fake = join(bin, 'trivy');
    const seen = join(work, 'fake-trivy-saw');
    await writeFile(
      fake,
      `#!/bin/sh
set -e
[ "$1" = rootfs ] || { echo "unexpected subcommand $1" >&2; exit 3; }
for dir; do :; done
printf '%s\\n' "$*" > ${JSON.stringify(seen)}
stat -c %u "$dir/var/lib/dpkg/status" >> ${JSON.stringify(seen)}
cat "$dir/var/lib/dpkg/status" >> ${JSON.stringify(seen)}
readlink "$dir/etc/os-release" >> ${JSON.stringify(seen)}
cat ${JSON.stringify(join(FIXTURES, 'trivy-rootfs-report.json'))}
`,
    );
    await chmod(fake, 0o755);
    assert.ok(chooseScanner({ trivyPath: fake }) instanceof TrivyScanner);
    assert.ok(chooseScanner({ advisoryPath: advisoryJson }) instanceof SbomScanner);
    assert.equal(findOnPath('trivy', bin), fake);

    const workDir = join(work, 'trivy-work');
    await mkdir(workDir);
    const result = await new TrivyScanner({ trivyPath: fake, workDir, skipDbUpdate: true }).scan({ ext4Path: debianImage, sha256: SHA });
    assert.equal(result.scanner, 'trivy');
    assert.equal(result.vulnerabilities.length, 6);
    const [args, owner, ...rest] = (await readFile(seen, 'utf8')).split('\n');
    // Unpacked by an unprivileged user when we are root (see extractExt4).
    assert.equal(owner, process.getuid?.() === 0 ? '65534' : String(process.getuid?.()));
    assert.match(args!, /^rootfs --format json --quiet --scanners vuln --list-all-pkgs --skip-db-update \/.+\/rootfs$/);
    assert.equal(rest.join('\n'), `${DPKG_STATUS}../usr/lib/os-release\n`);
    assert.deepEqual(await readdir(workDir), [], 'the unpacked image is removed');

    const failing = join(bin, 'failing-trivy');
    await writeFile(failing, '#!/bin/sh\necho "FATAL db missing" >&2\nexit 1\n');
    await chmod(failing, 0o755);
    await assert.rejects(
      new TrivyScanner({ trivyPath: failing, workDir }).scan({ ext4Path: debianImage, sha256: SHA }),
      /trivy exited with 1: FATAL db missing/,
    );
    assert.deepEqual(await readdir(workDir), []);
  });
});

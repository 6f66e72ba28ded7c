/**
 * The four version orders the advisory matcher relies on, each checked against pairs whose order
 * the real tools define (dpkg --compare-versions, apk version -t, packaging.version, semver.org),
 * concentrating on the cases naive comparison gets wrong: `~`, epochs, pre/post/dev releases,
 * prerelease identifiers, numbers longer than a double holds.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { apkCompare } from '../../src/images/scan/versions/apkCompare.js';
import { compareForEcosystem } from '../../src/images/scan/versions/compareForEcosystem.js';
import { dpkgCompare } from '../../src/images/scan/versions/dpkgCompare.js';
import { pep440Compare } from '../../src/images/scan/versions/pep440Compare.js';
import { semverCompare } from '../../src/images/scan/versions/semverCompare.js';

type Compare = (a: string, b: string) => number;

/** Each version strictly below the next, in both argument orders, and equal to itself. */
function assertAscending(compare: Compare, versions: string[]): void {
  for (let i = 0; i < versions.length; i++) {
    const v = versions[i]!;
    assert.equal(compare(v, v), 0, `${v} == ${v}`);
    for (let j = i + 1; j < versions.length; j++) {
      const w = versions[j]!;
      assert.equal(compare(v, w), -1, `${v} < ${w}`);
      assert.equal(compare(w, v), 1, `${w} > ${v}`);
    }
  }
}

function assertEqual(compare: Compare, pairs: Array<[string, string]>): void {
  for (const [a, b] of pairs) {
    assert.equal(compare(a, b), 0, `${a} == ${b}`);
    assert.equal(compare(b, a), 0, `${b} == ${a}`);
  }
}

describe('dpkgCompare', () => {
  test('tilde sorts before everything, even the end of the string', () => {
    assertAscending(dpkgCompare, ['1.0~~', '1.0~~a', '1.0~', '1.0~rc1', '1.0~rc2', '1.0', '1.0a', '1.0+b1', '1.0.1']);
  });
  test('epoch wins over everything else', () => {
    assert.equal(dpkgCompare('1:0.9', '2.0'), 1);
    assert.equal(dpkgCompare('2.0', '1:0.9'), -1);
    assertAscending(dpkgCompare, ['9.9-9', '1:0.1', '1:0.9', '2:0.0']);
  });
  test('revisions: the last hyphen splits, missing revision equals 0, security uploads order correctly', () => {
    assertAscending(dpkgCompare, ['3.0.11-1~deb12u1', '3.0.11-1~deb12u2', '3.0.11-1', '3.0.13-1~deb12u1', '3.0.13-1']);
    assertEqual(dpkgCompare, [
      ['1.0', '1.0-0'],
      ['0:1.0-1', '1.0-1'],
      ['1.2.3-4', '1.2.03-04'],
    ]);
    assertAscending(dpkgCompare, ['1.0-1', '1.0-1.1', '1.0-2', '1.0-10']);
    assertAscending(dpkgCompare, ['1.2-3-1', '1.2-3-2', '1.2-4-1']);
  });
  test('letters sort before other symbols; numbers compare numerically at any length', () => {
    assertAscending(dpkgCompare, ['1.0a', '1.0z', '1.0+', '1.0.']);
    assertAscending(dpkgCompare, ['1.9', '1.10', '1.99999999999999999999', '1.100000000000000000000']);
    assert.equal(dpkgCompare('1:1.2.13.dfsg-1', '1:1.2.13.dfsg-1+b1'), -1);
  });
});

describe('apkCompare', () => {
  test('numeric dot parts, more parts later', () => {
    assertAscending(apkCompare, ['1.0', '1.0.0', '1.0.1', '1.2', '1.10', '2']);
  });
  test('letter suffix sorts after the bare version but before a further numeric part', () => {
    assertAscending(apkCompare, ['1.0', '1.0a', '1.0b', '1.0.1']);
  });
  test('pre-release suffixes before the release, post-release after', () => {
    assertAscending(apkCompare, [
      '1.0_alpha',
      '1.0_alpha2',
      '1.0_beta1',
      '1.0_pre1',
      '1.0_rc1',
      '1.0_rc2',
      '1.0',
      '1.0_cvs1',
      '1.0_git20240101',
      '1.0_p1',
      '1.0_p2',
    ]);
  });
  test('-rN revisions compare numerically and a missing one is r0', () => {
    assertAscending(apkCompare, ['3.3.1-r0', '3.3.1-r1', '3.3.1-r9', '3.3.1-r10', '3.3.2-r0']);
    assertEqual(apkCompare, [['1.2.3', '1.2.3-r0']]);
    assert.equal(apkCompare('1.36.1-r29', '1.36.1-r31'), -1);
  });
});

describe('pep440Compare', () => {
  test('dev < pre < final < post', () => {
    assertAscending(pep440Compare, [
      '1.0.dev1',
      '1.0a1',
      '1.0a2.dev1',
      '1.0a2',
      '1.0b1',
      '1.0rc1',
      '1.0',
      '1.0.post1.dev1',
      '1.0.post1',
      '1.0.1',
    ]);
  });
  test('epochs, trailing zeros and local labels', () => {
    assertAscending(pep440Compare, ['2.0', '1!0.1']);
    assertAscending(pep440Compare, ['1.0', '1.0+abc', '1.0+abc.5', '1.0+5', '1.0.1']);
    assertAscending(pep440Compare, ['2.25.0', '2.25.1', '2.31.0', '2.100']);
  });
  test('normalised spellings are equal', () => {
    assertEqual(pep440Compare, [
      ['1.0', '1.0.0'],
      ['1.0a1', '1.0-alpha.1'],
      ['1.0rc1', '1.0c1'],
      ['1.0rc1', '1.0-pre1'],
      ['1.0.post1', '1.0-1'],
      ['1.0.post1', '1.0-r1'],
      ['1.0.post0', '1.0.post'],
      ['1.0.dev0', '1.0-dev'],
      ['v1.0', '1.0'],
      ['0!1.0', '1.0'],
      ['1.0+Ubuntu-1', '1.0+ubuntu.1'],
    ]);
  });
  test('unparsable versions sort before valid ones', () => {
    assert.equal(pep440Compare('not a version', '0.0.1'), -1);
    assert.equal(pep440Compare('0.0.1', 'not a version'), 1);
  });
});

describe('semverCompare', () => {
  test('the semver.org precedence example', () => {
    assertAscending(semverCompare, [
      '1.0.0-alpha',
      '1.0.0-alpha.1',
      '1.0.0-alpha.beta',
      '1.0.0-beta',
      '1.0.0-beta.2',
      '1.0.0-beta.11',
      '1.0.0-rc.1',
      '1.0.0',
    ]);
  });
  test('numeric parts compare numerically; build metadata and a v prefix are ignored', () => {
    assertAscending(semverCompare, ['1.9.0', '1.10.0', '4.17.15', '4.17.20', '4.17.21', '10.0.0']);
    assertEqual(semverCompare, [
      ['1.0.0+build.1', '1.0.0+build.2'],
      ['v1.2.3', '1.2.3'],
    ]);
    assert.equal(semverCompare('1.0.0-2', '1.0.0-10'), -1);
    assert.equal(semverCompare('1.0.0-10', '1.0.0-a'), -1);
  });
});

test('compareForEcosystem picks the order by the part before the colon', () => {
  assert.equal(compareForEcosystem('Debian:12'), dpkgCompare);
  assert.equal(compareForEcosystem('Ubuntu:24.04'), dpkgCompare);
  assert.equal(compareForEcosystem('Alpine:v3.20'), apkCompare);
  assert.equal(compareForEcosystem('PyPI'), pep440Compare);
  assert.equal(compareForEcosystem('npm'), semverCompare);
  assert.equal(compareForEcosystem('crates.io'), undefined);
});

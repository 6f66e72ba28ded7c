import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { newId } from '@scaibunker/core';
import { WorkerHttpServer } from '@scaibunker/worker';
import { requestLogEntry, requestObserver } from '../../src/http/requestLog.js';
import { ControllerMetrics } from '../../src/metrics/ControllerMetrics.js';
import { Registry } from '../../src/metrics/Registry.js';
import { FAKE_IMAGE_SHA, fakeWorker, servedController } from '../helpers/fakeWorker.js';
import { tenantWithKey, WORKER_TOKEN } from '../helpers/testController.js';

const API = '/v1/modules/scaibunker';

/** `name{labels} value` lines → a map from the series text to its value. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

function types(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1] as string, m[2] as string]));
}

describe('GET /metrics', () => {
  let served: Awaited<ReturnType<typeof servedController>>;
  let tenant: { tenantId: string; key: string };
  let workerId: string;

  before(async () => {
    served = await servedController();
    workerId = served.worker.id;
    served.worker.api.exec = async (_id, _req, handlers) => {
      await handlers.onStdout?.(Buffer.from('hi\n'));
      return { exitCode: 0, signal: null, timedOut: false, durationMs: 1 };
    };
    tenant = await tenantWithKey(served.controller, 'metrics', ['scaibunker:create', 'scaibunker:execute', 'scaibunker:read']);
    // A cap on the tenant's `crew` group, and a key in it: the first scrape reads the quota gauges.
    const admin = { authorization: `Bearer ${served.adminKey}`, 'content-type': 'application/json' };
    const profile = await fetch(`${served.url}${API}/quota-profiles`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ tenant_id: tenant.tenantId, name: 'crew-cap', max_bunkers: 5, max_memory_mb: 100_000 }),
    });
    assert.equal(profile.status, 201, await profile.clone().text());
    const { id } = (await profile.json()) as { id: string };
    const assigned = await fetch(`${served.url}${API}/quota-profiles/${id}/assignments`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ kind: 'group', subject: 'crew' }),
    });
    assert.equal(assigned.status, 201, await assigned.clone().text());
    const system = { kind: 'api_key' as const, tenantId: '', actor: 'test', permissions: [], userId: 'test', groups: [] };
    crewKey = (
      await served.controller.services.tenants.createApiKey(system, tenant.tenantId, 'crew-key', ['scaibunker:create'], {
        userId: 'ann',
        groups: ['crew'],
      })
    ).key;
  });
  let crewKey: string;
  after(async () => served?.close());

  const scrape = async (key = served.adminKey) => {
    const res = await fetch(`${served.url}/metrics`, { headers: { authorization: `Bearer ${key}` } });
    return { res, text: await res.text() };
  };

  test('names, types and values moving after a create and an exec', async () => {
    const h = { authorization: `Bearer ${tenant.key}`, 'content-type': 'application/json' };
    const created = await fetch(`${served.url}${API}/bunkers`, { method: 'POST', headers: h, body: JSON.stringify({ image: 'minimal' }) });
    assert.equal(created.status, 201, await created.clone().text());
    const bunker = (await created.json()) as { id: string; memory_mb: number };
    const crew = await fetch(`${served.url}${API}/bunkers`, {
      method: 'POST',
      headers: { ...h, authorization: `Bearer ${crewKey}` },
      body: JSON.stringify({ image: 'minimal' }),
    });
    assert.equal(crew.status, 201, await crew.clone().text());
    const crewBunker = (await crew.json()) as { memory_mb: number };
    const exec = await fetch(`${served.url}${API}/bunkers/${bunker.id}/exec`, {
      method: 'POST',
      headers: h,
      body: JSON.stringify({ command: 'echo hi' }),
    });
    assert.equal(exec.status, 200, await exec.clone().text());

    const { res, text } = await scrape();
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const t = types(text);
    for (const [name, type] of [
      ['scaibunker_http_requests_total', 'counter'],
      ['scaibunker_http_request_duration_seconds', 'histogram'],
      ['scaibunker_exec_duration_seconds', 'histogram'],
      ['scaibunker_create_duration_seconds', 'histogram'],
      ['scaibunker_bunkers', 'gauge'],
      ['scaibunker_workers', 'gauge'],
      ['scaibunker_worker_capacity', 'gauge'],
      ['scaibunker_worker_allocated', 'gauge'],
      ['scaibunker_worker_bunkers', 'gauge'],
      ['scaibunker_worker_heartbeat_age_seconds', 'gauge'],
      ['scaibunker_job_ticks_total', 'counter'],
      ['scaibunker_job_failures_total', 'counter'],
      ['scaibunker_tenant_usage', 'gauge'],
      ['scaibunker_quota_usage', 'gauge'],
      ['scaibunker_quota_cap', 'gauge'],
      ['scaibunker_image_cache_placements_total', 'counter'],
      ['scaibunker_image_warm_fetches_total', 'counter'],
    ]) {
      assert.equal(t.get(name as string), type, `# TYPE ${name} ${type}`);
    }
    const s = samples(text);
    assert.match(text, /^# HELP scaibunker_quota_usage \S/m);
    assert.equal(s.get('scaibunker_create_duration_seconds_count{result="ok"}'), 2);
    // Quotas: the tenant holds both bunkers; the crew group's bucket one, against its caps.
    const tn = tenant.tenantId;
    assert.equal(s.get(`scaibunker_tenant_usage{tenant="${tn}",resource="bunkers"}`), 2);
    assert.equal(s.get(`scaibunker_tenant_usage{tenant="${tn}",resource="memory_mb"}`), bunker.memory_mb + crewBunker.memory_mb);
    assert.equal(s.get(`scaibunker_quota_usage{tenant="${tn}",bucket="group:crew",resource="bunkers"}`), 1);
    assert.equal(s.get(`scaibunker_quota_cap{tenant="${tn}",bucket="group:crew",resource="bunkers"}`), 5);
    assert.equal(s.get(`scaibunker_quota_usage{tenant="${tn}",bucket="group:crew",resource="memory_mb"}`), crewBunker.memory_mb);
    assert.equal(s.get(`scaibunker_quota_cap{tenant="${tn}",bucket="group:crew",resource="memory_mb"}`), 100_000);
    // Uncapped resources have no series: nothing to be near.
    assert.equal(s.get(`scaibunker_quota_usage{tenant="${tn}",bucket="group:crew",resource="cpu_millicores"}`), undefined);
    // The fake worker holds the image: both placements were cache hits.
    assert.equal(s.get('scaibunker_image_cache_placements_total{result="hit"}'), 2);
    assert.equal(s.get('scaibunker_image_cache_placements_total{result="miss"}'), undefined);
    assert.equal(s.get('scaibunker_exec_duration_seconds_count{result="ok"}'), 1);
    assert.equal(s.get('scaibunker_exec_duration_seconds_bucket{result="ok",le="+Inf"}'), 1);
    assert.ok((s.get('scaibunker_exec_duration_seconds_sum{result="ok"}') ?? -1) >= 0);
    assert.equal(s.get(`scaibunker_http_requests_total{route="${API}/bunkers",method="POST",status="201"}`), 2);
    assert.equal(s.get(`scaibunker_http_requests_total{route="${API}/bunkers/:id/exec",method="POST",status="200"}`), 1);
    assert.equal(s.get(`scaibunker_http_request_duration_seconds_count{route="${API}/bunkers",method="POST"}`), 2);
    assert.equal(s.get('scaibunker_bunkers{state="running"}'), 2);
    assert.equal(s.get('scaibunker_bunkers{state="pending"}'), 0);
    assert.equal(s.get('scaibunker_workers{state="online"}'), 1);
    assert.equal(s.get(`scaibunker_worker_capacity{worker="${workerId}",resource="memory_mb"}`), 100_000_000);
    assert.ok((s.get(`scaibunker_worker_allocated{worker="${workerId}",resource="memory_mb"}`) ?? 0) > 0);
    assert.equal(s.get(`scaibunker_worker_bunkers{worker="${workerId}"}`), 2);
    const age = s.get(`scaibunker_worker_heartbeat_age_seconds{worker="${workerId}"}`);
    assert.ok(age !== undefined && age >= 0 && age < 60, `heartbeat age ${age}`);
    // listen() ran one exec-reconcile tick.
    assert.ok((s.get('scaibunker_job_ticks_total{job="exec-reconcile"}') ?? 0) >= 1);

    // A refused exec counts as an error; the counter moves on the next scrape.
    const bad = await fetch(`${served.url}${API}/bunkers/bk_00000000000000000000/exec`, {
      method: 'POST',
      headers: h,
      body: JSON.stringify({ command: 'true' }),
    });
    assert.equal(bad.status, 404);
    const s2 = samples((await scrape()).text);
    assert.equal(s2.get('scaibunker_exec_duration_seconds_count{result="error"}'), 1);
    assert.equal(s2.get(`scaibunker_http_requests_total{route="${API}/bunkers/:id/exec",method="POST",status="404"}`), 1);
    assert.ok((s2.get('scaibunker_http_requests_total{route="/metrics",method="GET",status="200"}') ?? 0) >= 1);
  });

  test('quota gauges follow the counters: a bunker ending lowers its bucket', async () => {
    const quotas = served.controller.services.quotas;
    const crewBunkers = async () =>
      (await quotas.gauges()).find((g) => g.tenantId === tenant.tenantId && g.bucket === 'group:crew' && g.resource === 'bunkers');
    const before = (await crewBunkers())?.current ?? 0;
    const h = { authorization: `Bearer ${crewKey}`, 'content-type': 'application/json' };
    const created = await fetch(`${served.url}${API}/bunkers`, { method: 'POST', headers: h, body: JSON.stringify({ image: 'minimal' }) });
    assert.equal(created.status, 201, await created.clone().text());
    assert.deepEqual(await crewBunkers(), {
      tenantId: tenant.tenantId,
      bucket: 'group:crew',
      resource: 'bunkers',
      current: before + 1,
      cap: 5,
    });
    const { id } = (await created.json()) as { id: string };
    const del = await fetch(`${served.url}${API}/bunkers/${id}`, { method: 'DELETE', headers: { authorization: `Bearer ${crewKey}` } });
    assert.equal(del.status, 200, await del.text());
    assert.equal((await crewBunkers())?.current, before);
  });

  test('a group_per_user assignment is one series: its fullest user against the per-user cap', async () => {
    const admin = { authorization: `Bearer ${served.adminKey}`, 'content-type': 'application/json' };
    const profile = await fetch(`${served.url}${API}/quota-profiles`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ tenant_id: tenant.tenantId, name: 'per-user', max_bunkers: 3 }),
    });
    const { id } = (await profile.json()) as { id: string };
    const assigned = await fetch(`${served.url}${API}/quota-profiles/${id}/assignments`, {
      method: 'POST',
      headers: admin,
      body: JSON.stringify({ kind: 'group_per_user', subject: 'lab' }),
    });
    assert.equal(assigned.status, 201, await assigned.clone().text());
    const system = { kind: 'api_key' as const, tenantId: '', actor: 'test', permissions: [], userId: 'test', groups: [] };
    const keyFor = async (userId: string) =>
      (
        await served.controller.services.tenants.createApiKey(system, tenant.tenantId, `lab-${userId}`, ['scaibunker:create'], {
          userId,
          groups: ['lab'],
        })
      ).key;
    const lab = (g: { tenantId: string; bucket: string; resource: string }) =>
      g.tenantId === tenant.tenantId && g.bucket === 'group:lab' && g.resource === 'bunkers';
    const perUser = async () =>
      (await served.controller.services.quotas.gauges()).filter(
        (g) => g.tenantId === tenant.tenantId && g.bucket === 'group_per_user:lab' && g.resource === 'bunkers',
      );
    // No member has a bunker yet: the series is there, at 0.
    assert.deepEqual(
      (await perUser()).map((g) => [g.current, g.cap]),
      [[0, 3]],
    );
    for (const [user, n] of [
      ['ada', 2],
      ['bob', 1],
    ] as const) {
      const key = await keyFor(user);
      for (let i = 0; i < n; i++) {
        const res = await fetch(`${served.url}${API}/bunkers`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ image: 'minimal' }),
        });
        assert.equal(res.status, 201, await res.clone().text());
      }
    }
    assert.deepEqual(
      (await perUser()).map((g) => [g.current, g.cap]),
      [[2, 3]],
    );
    assert.equal((await served.controller.services.quotas.gauges()).filter(lab).length, 0, 'no shared bucket for a per-user group');
  });

  test('only platform admins: a tenant admin is 403, no credentials 401', async () => {
    const ta = await tenantWithKey(served.controller, 'metrics-ta', ['scaibunker:admin:tenant']);
    const r = await scrape(ta.key);
    assert.equal(r.res.status, 403);
    assert.equal(JSON.parse(r.text).error.code, 'PERMISSION_DENIED');
    assert.equal((await fetch(`${served.url}/metrics`)).status, 401);
  });

  test('--metrics-port: the same text without auth; nothing else there', async () => {
    const address = await served.controller.listenMetrics(0);
    assert.match(address, /^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${address}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await res.text();
    assert.equal(types(text).get('scaibunker_bunkers'), 'gauge');
    assert.equal((await fetch(`${address}/v1/modules/scaibunker/bunkers`)).status, 404);
  });

  test('every answer carries x-request-id; a plain incoming one is kept', async () => {
    const res = await fetch(`${served.url}/healthz`);
    assert.match(res.headers.get('x-request-id') ?? '', /^rq_[0-9a-z]{20}$/);
    const given = await fetch(`${served.url}/healthz`, { headers: { 'x-request-id': 'lb-1234.abc' } });
    assert.equal(given.headers.get('x-request-id'), 'lb-1234.abc');
    const odd = await fetch(`${served.url}/healthz`, { headers: { 'x-request-id': 'a b"c' } });
    assert.match(odd.headers.get('x-request-id') ?? '', /^rq_/);
  });
});

describe('request logs and the request id at the worker', () => {
  test('json and text lines carry method, route, status, duration, tenant, actor and request id; never the query', () => {
    const lines: string[] = [];
    const metrics = new ControllerMetrics({} as never, async () => []);
    const record = {
      requestId: 'rq_1',
      method: 'GET',
      route: '/v1/modules/scaibunker/bunkers/:id/shell',
      path: '/v1/modules/scaibunker/bunkers/bk_1/shell',
      status: 200,
      durationMs: 1.23456,
      tenantId: 'tn_1',
      actor: 'key:ak_1',
    };
    requestObserver(metrics, 'json', (l) => lines.push(l))(record);
    requestObserver(metrics, 'text', (l) => lines.push(l))(record);
    requestObserver(metrics, undefined, (l) => lines.push(l))(record);
    assert.equal(lines.length, 2);
    const entry = JSON.parse(lines[0] as string);
    assert.deepEqual({ ...entry, time: undefined }, { ...requestLogEntry(record), time: undefined, duration_ms: 1.235 });
    assert.equal(entry.request_id, 'rq_1');
    assert.equal(entry.tenant, 'tn_1');
    assert.equal(entry.actor, 'key:ak_1');
    assert.equal(entry.route, record.route);
    assert.equal(entry.status, 200);
    assert.equal(entry.level, 'info');
    assert.match(
      lines[1] as string,
      /^\[http\] GET \/v1\/modules\/scaibunker\/bunkers\/bk_1\/shell 200 1\.2ms .*tenant=tn_1 actor=key:ak_1 request=rq_1\n$/,
    );
    assert.equal(metrics.httpRequests.get({ route: record.route, method: 'GET', status: '200' }), 3);
  });

  test('the controller sends its request id to a remote worker (an exec: on the channel), and the worker logs it', async () => {
    const served = await servedController();
    const fake = fakeWorker();
    fake.api.exec = async () => ({ exitCode: 0, signal: null, timedOut: false, durationMs: 1 });
    const workerServer = new WorkerHttpServer(fake.api, WORKER_TOKEN, { requestLog: 'json' });
    const written: string[] = [];
    const realWrite = process.stderr.write.bind(process.stderr);
    try {
      await workerServer.listen(0, '127.0.0.1');
      // A remote worker (reached by URL): only it holds the image, so the bunker lands there.
      const workerId = newId('wk');
      await served.controller.services.workers.heartbeat({
        worker_id: workerId,
        name: 'remote',
        url: workerServer.url,
        isolations: ['container'],
        network_profiles: ['isolated'],
        capacity: { cpu_millicores: 1_000_000_000, memory_mb: 1_000_000_000, disk_mb: 1_000_000_000 },
        cached_images: [FAKE_IMAGE_SHA],
        bridges: [],
        bunkers: [],
      });
      await served.controller.services.workers.setDraining(served.worker.id, true);
      const t = await tenantWithKey(served.controller, 'rid', ['scaibunker:create', 'scaibunker:execute']);
      const h = { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' };
      const created = await fetch(`${served.url}${API}/bunkers`, {
        method: 'POST',
        headers: h,
        body: JSON.stringify({ image: 'minimal' }),
      });
      assert.equal(created.status, 201, await created.clone().text());
      const bunker = (await created.json()) as { id: string; worker_id?: string };
      process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
        written.push(String(chunk));
        return (realWrite as (...a: unknown[]) => boolean)(chunk, ...rest);
      }) as typeof process.stderr.write;
      const exec = await fetch(`${served.url}${API}/bunkers/${bunker.id}/exec`, {
        method: 'POST',
        headers: { ...h, 'x-request-id': 'trace-abc-123' },
        body: JSON.stringify({ command: 'true' }),
      });
      assert.equal(exec.status, 200, await exec.clone().text());
      assert.equal(exec.headers.get('x-request-id'), 'trace-abc-123');
      process.stderr.write = realWrite;
      const line = written.map((w) => w.trim()).find((w) => w.includes('"worker request"') && w.includes('/exec'));
      assert.ok(line, `a worker log line for the exec: ${written.join('')}`);
      assert.equal(JSON.parse(line).request_id, 'trace-abc-123');
      assert.equal(JSON.parse(line).method, 'MUX');
    } finally {
      process.stderr.write = realWrite;
      await served.close();
      await workerServer.close();
    }
  });
});

test('registry: escaping, cumulative buckets, +Inf', async () => {
  const r = new Registry();
  const c = r.counter('x_total', 'help with \\ and\nnewline', ['l']);
  c.inc({ l: 'a"b\\c\nd' }, 2);
  const h = r.histogram('y_seconds', 'y', [], [0.1, 1]);
  h.observe(undefined, 0.05);
  h.observe(undefined, 0.5);
  h.observe(undefined, 5);
  const text = await r.render();
  assert.match(text, /^# HELP x_total help with \\\\ and\\nnewline$/m);
  assert.match(text, /^x_total\{l="a\\"b\\\\c\\nd"\} 2$/m);
  assert.match(text, /^y_seconds_bucket\{le="0.1"\} 1$/m);
  assert.match(text, /^y_seconds_bucket\{le="1"\} 2$/m);
  assert.match(text, /^y_seconds_bucket\{le="\+Inf"\} 3$/m);
  assert.match(text, /^y_seconds_count 3$/m);
  assert.match(text, /^y_seconds_sum 5.55$/m);
});

/**
 * A stand-in for a `firecracker --api-sock PATH` process, for testing the Firecracker driver on
 * hosts without Firecracker or KVM. It serves the REST API on the Unix socket, checks every
 * request against Firecracker's published OpenAPI document (test/fixtures/firecracker.json,
 * from firecracker.yaml) and answers as Firecracker does: 204, 200 with JSON, or 400 with a
 * `fault_message`. It keeps Firecracker's rules that the driver depends on: pre-boot resources
 * only before InstanceStart, files opened when a resource is configured (relative paths from
 * the process's working directory), snapshot load only on a fresh process, snapshot create
 * only while paused, pause/resume only after start.
 *
 * The "guest" is as thin as a test needs: once started, the vsock device's Unix socket accepts
 * `CONNECT <port>\n` and, on the agent's port, answers `OK <n>\n` and the agent's HELLO frame;
 * the serial console file gets a kernel banner. Every request is appended to `log` (NDJSON).
 */
import { appendFileSync, existsSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import net from 'node:net';
import { resolve } from 'node:path';
import { encodeJsonFrame, FrameType, PROTOCOL_VERSION } from '../../src/agent/protocol.js';
import { AGENT_VSOCK_PORT } from '../../src/providers/microvm/firecracker/FirecrackerMachine.js';
import { type SwaggerDoc, SwaggerSchema } from './SwaggerSchema.js';

export const FIXTURE = resolve(import.meta.dirname, '../fixtures/firecracker.json');
export const DOUBLE_VERSION = 'Firecracker v1.16.1 (API double)';

export interface LoggedRequest {
  method: string;
  path: string;
  body?: unknown;
  status: number;
  fault?: string | undefined;
}

interface Options {
  apiSock: string;
  /** NDJSON request log. */
  log?: string;
  /** `METHOD /path` answered 400 with a fault (as Firecracker refusing it). */
  fault?: string;
  /** The action_type on which the process exits (code 1), as a Firecracker that crashed. */
  exitOn?: string;
}

class Fault extends Error {}

const PRE_BOOT = new Set(['/machine-config', '/boot-source', '/drives/{drive_id}', '/network-interfaces/{iface_id}', '/vsock', '/serial']);

export class FirecrackerApiDouble {
  private readonly schema = new SwaggerSchema(JSON.parse(readFileSync(FIXTURE, 'utf8')) as SwaggerDoc);
  private server?: Server;
  private vsock?: net.Server;
  private state: 'Not started' | 'Running' | 'Paused' = 'Not started';
  private configured = new Map<string, Record<string, unknown>>();
  private loaded = false;

  constructor(private readonly o: Options) {}

  async listen(): Promise<void> {
    const server = createHttpServer((req, res) => void this.handle(req, res));
    // Firecracker keeps idle API connections open (the driver watches one to see the process exit)
    server.keepAliveTimeout = 0;
    server.headersTimeout = 0;
    server.requestTimeout = 0;
    this.server = server;
    await new Promise<void>((res, rej) => {
      server.once('error', rej);
      server.listen(this.o.apiSock, () => res());
    });
  }

  async close(): Promise<void> {
    this.vsock?.close();
    this.server?.closeAllConnections();
    await new Promise<void>((res) => (this.server ? this.server.close(() => res()) : res()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const method = req.method ?? '';
    const path = req.url ?? '';
    let body: unknown;
    let status = 204;
    let out: unknown;
    let fault: string | undefined;
    try {
      if (text) {
        try {
          body = JSON.parse(text);
        } catch {
          throw new Fault('the request body is not JSON');
        }
      }
      const op = this.schema.match(method, path);
      if (!op) throw new Fault(`Invalid request method and/or path: ${method} ${path}`);
      if (body !== undefined && req.headers['content-type'] !== 'application/json')
        throw new Fault('Content-Type must be application/json');
      const errors = this.schema.checkBody(method, op.template, body);
      if (errors.length) throw new Fault(`the request does not match the API document: ${errors.join('; ')}`);
      if (this.o.fault === `${method} ${path}`) throw new Fault('injected fault');
      out = this.apply(method, op.template, op.params, body as Record<string, unknown>);
      if (out !== undefined) status = 200;
    } catch (e) {
      if (!(e instanceof Fault)) throw e;
      status = 400;
      fault = e.message;
      out = { fault_message: e.message };
    }
    if (this.o.log) appendFileSync(this.o.log, `${JSON.stringify({ method, path, body, status, fault } satisfies LoggedRequest)}\n`);
    res.writeHead(status, out === undefined ? {} : { 'Content-Type': 'application/json' });
    res.end(out === undefined ? undefined : JSON.stringify(out));
    if (this.o.exitOn && status === 204 && (body as { action_type?: string } | undefined)?.action_type === this.o.exitOn) process.exit(1);
  }

  private apply(method: string, template: string, params: Record<string, string>, body: Record<string, unknown>): unknown {
    if (method === 'GET' && template === '/')
      return { app_name: 'Firecracker', id: 'anonymous-instance', state: this.state, vmm_version: DOUBLE_VERSION };
    if (method === 'GET' && template === '/version') return { firecracker_version: DOUBLE_VERSION };
    if (PRE_BOOT.has(template) && method === 'PUT') {
      if (this.state !== 'Not started' || this.loaded)
        throw new Fault('The requested operation is not supported after starting the microVM.');
      if (params.drive_id !== undefined && params.drive_id !== body.drive_id)
        throw new Fault('The id from the path does not match the id from the body!');
      if (params.iface_id !== undefined && params.iface_id !== body.iface_id)
        throw new Fault('The id from the path does not match the id from the body!');
      for (const key of ['kernel_image_path', 'initrd_path', 'path_on_host'] as const) {
        const file = body[key];
        if (typeof file === 'string' && !existsSync(file))
          throw new Fault(`Cannot open ${key} ${file}: No such file or directory (os error 2)`);
      }
      this.configured.set(template === '/drives/{drive_id}' ? `/drives/${params.drive_id}` : template, body);
      return undefined;
    }
    if (method === 'PUT' && template === '/actions') {
      if (body.action_type !== 'InstanceStart') return undefined;
      if (this.state !== 'Not started' || this.loaded) throw new Fault('The microVM is already running.');
      if (!this.configured.has('/boot-source')) throw new Fault('Cannot start microvm without kernel configuration.');
      if (!this.configured.has('/machine-config')) throw new Fault('Cannot start microvm without machine configuration.');
      this.boot();
      return undefined;
    }
    if (method === 'PATCH' && template === '/vm') {
      if (this.state === 'Not started') throw new Fault('Operation not allowed pre-boot');
      this.state = body.state === 'Paused' ? 'Paused' : 'Running';
      return undefined;
    }
    if (method === 'PUT' && template === '/snapshot/create') {
      if (this.state !== 'Paused') throw new Fault('Cannot save the microVM state: the microVM is not paused');
      // the guest memory file is as big as the guest's RAM (sparse here)
      const mem = Number(this.configured.get('/machine-config')?.mem_size_mib ?? 0);
      writeFileSync(String(body.mem_file_path), '');
      truncateSync(String(body.mem_file_path), mem * 1048576);
      writeFileSync(
        String(body.snapshot_path),
        JSON.stringify({ double: 'firecracker-snapshot', resources: Object.fromEntries(this.configured) }),
      );
      return undefined;
    }
    if (method === 'PUT' && template === '/snapshot/load') {
      const others = [...this.configured.keys()].filter((k) => k !== '/logger' && k !== '/metrics');
      if (this.state !== 'Not started' || this.loaded || others.length)
        throw new Fault('Loading a microVM snapshot not allowed after configuring boot-specific resources.');
      const backend = body.mem_backend as { backend_path?: string } | undefined;
      const memPath = backend?.backend_path ?? (body.mem_file_path as string | undefined);
      if (!memPath) throw new Fault('Either mem_backend or mem_file_path must be present');
      if (!existsSync(memPath)) throw new Fault(`Cannot open the memory file ${memPath}`);
      let saved: { resources: Record<string, Record<string, unknown>> };
      try {
        saved = JSON.parse(readFileSync(String(body.snapshot_path), 'utf8'));
      } catch (e) {
        throw new Fault(`Cannot load the microVM state: ${(e as Error).message}`);
      }
      for (const [k, v] of Object.entries(saved.resources)) {
        if (k.startsWith('/drives/') && typeof v.path_on_host === 'string' && !existsSync(v.path_on_host))
          throw new Fault(`Cannot restore drive ${k}: ${v.path_on_host} does not exist`);
        this.configured.set(k, v);
      }
      this.loaded = true;
      this.state = 'Paused';
      this.startGuestDevices();
      if (body.resume_vm === true) this.state = 'Running';
      return undefined;
    }
    throw new Fault(`${method} ${template} is in the API document but not in this double`);
  }

  private boot(): void {
    this.state = 'Running';
    const serial = this.configured.get('/serial')?.serial_out_path;
    if (typeof serial === 'string') appendFileSync(serial, 'Linux version 0.0.0-firecracker-double\n');
    this.startGuestDevices();
  }

  /** The vsock device's Unix socket, with the guest agent listening on its port. */
  private startGuestDevices(): void {
    const uds = this.configured.get('/vsock')?.uds_path;
    if (typeof uds !== 'string') return;
    rmSync(uds, { force: true });
    this.vsock = net.createServer((sock) => {
      let line = '';
      const onData = (d: Buffer) => {
        line += d.toString('latin1');
        if (!line.includes('\n')) return;
        sock.off('data', onData);
        const port = Number(/^CONNECT (\d+)$/.exec(line.split('\n')[0] ?? '')?.[1]);
        if (port !== AGENT_VSOCK_PORT || this.state !== 'Running') return void sock.destroy(); // nothing listens: closed, as Firecracker does
        sock.write('OK 1073741824\n');
        sock.write(encodeJsonFrame(0, FrameType.HELLO, { protocol: PROTOCOL_VERSION, version: 'double', pid: 1, boot_id: 'double' }));
      };
      sock.on('data', onData);
      sock.on('error', () => {});
    });
    this.vsock.listen(uds);
  }
}

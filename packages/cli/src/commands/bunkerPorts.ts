/**
 * `scaibunker bunker preview|previews|preview-rm`: host-based previews of a bunker's port;
 * `port-forward`: a local TCP listener whose connections are tunnelled to a port in the bunker.
 */
import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';
import { Bunker, type PreviewInfo } from '@scaibunker/sdk';
import { type Command, InvalidArgumentError } from 'commander';
import { type ClientFlags, clientAction, clientFrom, printJson, withClientOptions } from './clientCommand.js';

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `90s`, `30m`, `12h`, `7d` as seconds. */
function seconds(value: string): number {
  const m = /^(\d+)(s|m|h|d)$/.exec(value.trim());
  if (!m?.[1] || !m[2]) throw new InvalidArgumentError('expected a duration such as 90s, 30m, 12h, 7d');
  return Number(m[1]) * (UNITS[m[2]] as number);
}

function port(value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 65535) throw new InvalidArgumentError('expected a port, 1 to 65535');
  return Number(value);
}

function previewRows(items: PreviewInfo[]): string {
  const rows = items.map((p) => {
    const state = p.revoked_at ? 'revoked' : Date.parse(p.expires_at) <= Date.now() ? 'expired' : p.public ? 'public' : 'token';
    return `${p.id}\t${p.port}\t${state}\t${p.expires_at}\t${p.url}`;
  });
  return `${['ID\tPORT\tSTATE\tEXPIRES\tURL', ...rows].join('\n')}\n`;
}

/** `LOCAL:REMOTE` or `PORT` (the same on both sides). */
function forwardSpec(value: string): { local: number; remote: number } {
  const [a, b] = value.split(':', 2);
  // 0: any free local port (printed).
  const local = a === '0' ? 0 : port(a ?? '');
  return { local, remote: b === undefined ? local : port(b) };
}

export function registerPortCommands(bunker: Command): void {
  withClientOptions(
    bunker
      .command('port-forward')
      .description('Listen on 127.0.0.1:LOCAL; each connection is tunnelled to REMOTE inside the bunker (until ^C)')
      .argument('<id>', 'bunker id')
      .argument('<ports>', 'LOCAL:REMOTE, or PORT for the same on both sides', forwardSpec)
      .option('--address <address>', 'local address to listen on', '127.0.0.1'),
  ).action(
    clientAction(async (id: string, spec: { local: number; remote: number }, o: ClientFlags & { address: string }) => {
      const b = await Bunker.connect(id, await clientFrom(o));
      const open = new Set<Socket>();
      const server = createServer((local) => {
        open.add(local);
        local.once('close', () => open.delete(local));
        local.pause();
        b.ports.connect(spec.remote).then(
          (remote) => {
            local.pipe(remote);
            remote.pipe(local);
            local.resume();
            const end = () => {
              local.destroy();
              remote.destroy();
            };
            local.once('close', end);
            remote.once('close', end);
            local.on('error', end);
            remote.on('error', end);
          },
          (err: Error & { code?: string }) => {
            process.stderr.write(`scaibunker: ${err.code ?? 'ERROR'}: ${err.message}\n`);
            local.destroy();
          },
        );
      });
      server.listen(spec.local, o.address);
      await once(server, 'listening');
      const addr = server.address() as { address: string; port: number };
      process.stderr.write(`forwarding ${addr.address}:${addr.port} -> ${id}:${spec.remote} (^C stops)\n`);
      if (o.json) printJson({ address: addr.address, port: addr.port, bunker_id: id, remote_port: spec.remote });
      await Promise.race([once(process, 'SIGINT'), once(process, 'SIGTERM')]);
      server.close();
      for (const s of open) s.destroy();
      return 0;
    }),
  );

  withClientOptions(
    bunker
      .command('preview')
      .description('Make a preview of a port: a URL on the preview domain, with a token (shown once) unless --public')
      .argument('<id>', 'bunker id')
      .argument('<port>', 'port inside the bunker', port)
      .option('--public', 'no token needed (needs scaibunker:preview:public)')
      .option('--expires <duration>', 'lifetime, 60s to 7d (default 1h)', seconds),
  ).action(
    clientAction(async (id: string, p: number, o: ClientFlags & { public?: boolean; expires?: number }) => {
      const b = await Bunker.connect(id, await clientFrom(o));
      const preview = await b.ports.preview(p, {
        ...(o.public ? { public: true } : {}),
        ...(o.expires !== undefined ? { expiresInS: o.expires } : {}),
      });
      if (o.json) printJson(preview);
      else {
        process.stdout.write(`url\t${preview.url}\n`);
        if (preview.token) {
          process.stdout.write(`token\t${preview.token}\n`);
          process.stdout.write(`link\t${preview.url}?token=${preview.token}\n`);
        }
        process.stdout.write(`id\t${preview.id}\nexpires\t${preview.expires_at}\n`);
      }
      return 0;
    }),
  );

  withClientOptions(bunker.command('previews').description("A bunker's previews, newest first").argument('<id>', 'bunker id')).action(
    clientAction(async (id: string, o: ClientFlags) => {
      const items = await (await Bunker.connect(id, await clientFrom(o))).ports.previews();
      if (o.json) printJson(items);
      else process.stdout.write(previewRows(items));
      return 0;
    }),
  );

  withClientOptions(
    bunker
      .command('preview-rm')
      .description('Revoke a preview at once')
      .argument('<id>', 'bunker id')
      .argument('<preview_id>', 'preview id'),
  ).action(
    clientAction(async (id: string, previewId: string, o: ClientFlags) => {
      await (await Bunker.connect(id, await clientFrom(o))).ports.revoke(previewId);
      if (o.json) printJson({ id: previewId, revoked: true });
      else process.stdout.write(`${previewId}\trevoked\n`);
      return 0;
    }),
  );
}

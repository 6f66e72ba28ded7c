import { Command } from 'commander';
import { registerAdminCommands } from './commands/admin.js';
import { registerBridgeCommands } from './commands/bridge.js';
import { registerBunkerCommands } from './commands/bunker.js';
import { registerImageCommands } from './commands/image.js';
import { registerServerCommands } from './commands/server.js';
import { registerUsageCommand } from './commands/usage.js';

const program = new Command('scaibunker').description('ScaiBunker: multi-tenant sandboxed compute').version('0.1.0').showHelpAfterError();
registerServerCommands(program);
registerBunkerCommands(program);
registerBridgeCommands(program);
registerImageCommands(program);
registerAdminCommands(program);
registerUsageCommand(program);

program.parseAsync(process.argv).catch((err: Error) => {
  process.stderr.write(`scaibunker: ${err.message}\n`);
  process.exit(1);
});

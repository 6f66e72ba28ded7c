/** After a worker restart: the bunkers its providers still run, registered again with fresh agent channels. */
import { AgentClient } from '../agent/AgentClient.js';
import type { Provider } from '../providers/Provider.js';
import { withTimeout } from '../util/withTimeout.js';
import { messageOf } from './agentErrors.js';
import type { BunkerRegistry } from './BunkerRegistry.js';
import type { WorkerLogger } from './WorkerOptions.js';

/** A bunker that is not running, or whose agent cannot be reached, is registered stopped: the controller decides its fate. */
export async function reconnectSurvivors(
  providers: readonly Provider[],
  registry: BunkerRegistry,
  agentConnectTimeoutMs: number,
  logger: WorkerLogger,
): Promise<void> {
  for (const provider of providers) {
    const survivors = await provider.list();
    await Promise.all(
      survivors.map(async (b) => {
        if (!b.running) {
          registry.track(b.id, provider, null);
          return;
        }
        try {
          // HELLO first: a VM's agent drops bytes sent before it noticed our predecessor left
          const agent = await AgentClient.connect(b.agentSocketPath, { timeoutMs: agentConnectTimeoutMs, awaitHello: true });
          await withTimeout(agent.health(), agentConnectTimeoutMs, 'agent health check').catch((err) => {
            agent.close();
            throw err;
          });
          registry.track(b.id, provider, agent);
          logger.info(`reconnected to ${provider.isolation} bunker ${b.id}`);
        } catch (err) {
          logger.warn(`could not reconnect to bunker ${b.id}: ${messageOf(err)}`);
          registry.track(b.id, provider, null);
        }
      }),
    );
  }
}

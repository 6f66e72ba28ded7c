export const LIFECYCLES = ['ephemeral', 'session', 'persistent'] as const;
export type Lifecycle = (typeof LIFECYCLES)[number];

/** DESIGN.md lifecycle defaults; `null` max lifetime = no cap. */
export const LIFECYCLE_DEFAULTS: Record<Lifecycle, { maxLifetimeS: number | null; idleTimeoutS: number }> = {
  ephemeral: { maxLifetimeS: 3600, idleTimeoutS: 300 },
  session: { maxLifetimeS: 8 * 3600, idleTimeoutS: 900 },
  persistent: { maxLifetimeS: null, idleTimeoutS: 900 },
};

export const RESOURCE_DEFAULTS = { cpuMillicores: 1000, memoryMb: 512, diskMb: 1024 } as const;

/** A microVM needs room for its own kernel: smaller guests do not boot reliably. */
export const MICROVM_MIN_MEMORY_MB = 128;

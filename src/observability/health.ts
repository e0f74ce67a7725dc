/**
 * Readiness: can this process serve requests right now? Each check is bounded by a timeout so
 * a hung store makes the probe answer "down" instead of hanging the probe itself.
 */

/** `embedded`: an in-process store (PGlite, MemoryStore) that answered; nothing remote to reach. */
export type StoreCheck = 'up' | 'down' | 'embedded';

export interface ReadinessReport {
  ready: boolean;
  checks: {
    postgres: StoreCheck;
    redis: StoreCheck;
    keys: 'loaded' | 'missing';
  };
}

export interface ReadinessProbes {
  /** Resolves when the durable store answers a trivial query. */
  pingDatabase: () => Promise<void>;
  /** Resolves when the short-lived store answers. */
  pingShortLived: () => Promise<void>;
  keysLoaded: () => boolean;
  /** Which stores are in-process (PGlite, MemoryStore): reported as `embedded`. */
  embedded?: { database?: boolean; shortLived?: boolean };
  /** Per check; default 1 s. */
  timeoutMs?: number;
}

export const DEFAULT_CHECK_TIMEOUT_MS = 1000;

/** Resolves `true` when `ping` resolves within `timeoutMs`, `false` when it fails or is late. */
async function answers(ping: () => Promise<void>, timeoutMs: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    // A late ping keeps running; race() has subscribed to it, so its rejection is not unhandled.
    return await Promise.race([
      ping().then(
        () => true,
        () => false,
      ),
      late,
    ]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

export async function readiness(probes: ReadinessProbes): Promise<ReadinessReport> {
  const timeoutMs = probes.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  const check = async (ping: () => Promise<void>, embedded: boolean | undefined): Promise<StoreCheck> => {
    if (!(await answers(ping, timeoutMs))) return 'down';
    return embedded ? 'embedded' : 'up';
  };
  const [postgres, redis] = await Promise.all([check(probes.pingDatabase, probes.embedded?.database), check(probes.pingShortLived, probes.embedded?.shortLived)]);
  const keys = probes.keysLoaded() ? 'loaded' : 'missing';
  return { ready: postgres !== 'down' && redis !== 'down' && keys === 'loaded', checks: { postgres, redis, keys } };
}

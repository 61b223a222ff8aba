/**
 * Prometheus metrics for a fleet operator, from the machines' own inspection stream: pass
 * `metrics.inspect` as the `inspect` option of `establishConnection`, `createConnectionActor` or
 * `createAdapterPool` (it sees every connection actor of a pool), and `metrics.observePool(pool)`
 * for the slot gauges. prom-client is an optional peer dependency, loaded only here.
 *
 * What is counted comes from the connection machine's data, never from log text: attempts from
 * the attempt list in its context (each attempt counted once, when its outcome is known), link
 * losses and escalations from the events it emits (`link-lost`, `escalation`: what `actor.on()`
 * gives an app), adapter resets from its `shareLedgerChange` action of kind `reset`.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import type { InspectionEvent } from 'xstate';
import type * as PromClient from 'prom-client';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AdapterPool } from '../pool/create-adapter-pool.js';

/** The part of a prom-client `Registry` an app uses here (prom-client's own Registry is one). */
export interface MetricsRegistry {
  /** The exposition text of every registered metric. */
  metrics(): Promise<string>;
  /** The content type of that text, for an HTTP response. */
  readonly contentType: string;
}

/** Options of {@link createPrometheusMetrics}. */
export interface PrometheusMetricsOptions {
  /**
   * A prom-client `Registry` to register in (default: a new one, so several instances never
   * collide). Typed structurally so that apps without the optional prom-client still compile.
   */
  readonly registry?: MetricsRegistry;
  /** Metric name prefix (default `bluez_cm_`). */
  readonly prefix?: string;
  /** Also collect prom-client's default process metrics (default false). */
  readonly processMetrics?: boolean;
}

/** What {@link createPrometheusMetrics} returns. */
export interface PrometheusMetrics {
  /** The registry holding the metrics (`await registry.metrics()` is the exposition text). */
  readonly registry: MetricsRegistry;
  /** Pass as the `inspect` option of a connection actor or pool. */
  readonly inspect: (event: InspectionEvent) => void;
  /** Adds slot gauges (in use, limit in force, learned limit) per adapter of `pool`. */
  observePool(pool: Pick<AdapterPool, 'snapshot'>): void;
  /** The exposition text (Prometheus text format 0.0.4). */
  text(): Promise<string>;
  /** The registry's content type, for an HTTP response. */
  readonly contentType: string;
  /** Stops the event-loop delay monitor. */
  close(): void;
}

interface AttemptLike {
  readonly number: number;
  readonly adapter: string;
  readonly startedAt: number;
  readonly durationMs: number | null;
  readonly outcome: string;
  readonly cause: { readonly class: string } | null;
}

interface ConnectionContextLike {
  readonly address: string;
  readonly adapter: string;
  readonly attempts: readonly AttemptLike[];
}

function connectionContextOf(snapshot: unknown): ConnectionContextLike | undefined {
  if (typeof snapshot !== 'object' || snapshot === null) return undefined;
  const context = (snapshot as { context?: unknown }).context;
  if (typeof context !== 'object' || context === null) return undefined;
  const c = context as Partial<ConnectionContextLike>;
  return typeof c.address === 'string' && typeof c.adapter === 'string' && Array.isArray(c.attempts)
    ? (c as ConnectionContextLike)
    : undefined;
}

/** Buckets for time to connected: BLE connects take 0.1–10 s, a bad day a minute or more. */
const TIME_TO_CONNECTED_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 40, 80, 160, 320];

/**
 * Creates the metrics. Rejects with a clear error when prom-client is not installed.
 * @throws TypeError naming the field for bad options
 */
export async function createPrometheusMetrics(
  options: PrometheusMetricsOptions = {},
): Promise<PrometheusMetrics> {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const prefix = options.prefix ?? 'bluez_cm_';
  if (typeof prefix !== 'string' || !/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
    throw new TypeError(
      `prefix must be a Prometheus metric name prefix like "bluez_cm_", got ${String(prefix)}`,
    );
  }
  let prom: typeof PromClient;
  try {
    prom = await import('prom-client');
  } catch (cause) {
    throw new Error('metrics need the optional peer dependency prom-client: npm install prom-client', {
      cause,
    });
  }
  // A caller's registry must be prom-client's own (documented on the option): its metrics are
  // registered into it.
  const registry = (options.registry as Registry | undefined) ?? new prom.Registry();
  if (options.processMetrics === true) prom.collectDefaultMetrics({ register: registry, prefix });

  const attempts: Counter<'adapter' | 'outcome' | 'class'> = new prom.Counter({
    name: `${prefix}attempts_total`,
    help: 'Connection attempts that ended, by adapter, outcome (connected, failed, cancelled, requeued) and failure class',
    labelNames: ['adapter', 'outcome', 'class'],
    registers: [registry],
  });
  const connects: Counter<'adapter'> = new prom.Counter({
    name: `${prefix}connects_total`,
    help: 'Connections established (validated), by adapter',
    labelNames: ['adapter'],
    registers: [registry],
  });
  const linkLosses: Counter<'adapter'> = new prom.Counter({
    name: `${prefix}link_losses_total`,
    help: 'Established links that were lost (Connected=false, device gone, bluetoothd gone)',
    labelNames: ['adapter'],
    registers: [registry],
  });
  const escalations: Counter<'adapter' | 'action'> = new prom.Counter({
    name: `${prefix}escalations_total`,
    help: 'Escalation decisions after a failed attempt, by adapter and action (retry, diagnose, clear, rotate, reset)',
    labelNames: ['adapter', 'action'],
    registers: [registry],
  });
  const resets: Counter<'adapter'> = new prom.Counter({
    name: `${prefix}adapter_resets_total`,
    help: 'Adapter recoveries run (the reset ladder), by adapter',
    labelNames: ['adapter'],
    registers: [registry],
  });
  const timeToConnected: Histogram<'adapter'> = new prom.Histogram({
    name: `${prefix}time_to_connected_seconds`,
    help: 'From the first attempt of a connect to a validated connection, by the adapter it connected on',
    labelNames: ['adapter'],
    buckets: TIME_TO_CONNECTED_BUCKETS,
    registers: [registry],
  });
  const loopDelay: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 });
  loopDelay.enable();
  new prom.Gauge({
    name: `${prefix}event_loop_delay_seconds`,
    help: 'Event-loop delay since the previous scrape (p50, p99, max); a blocked loop delays every deadline',
    labelNames: ['quantile'],
    registers: [registry],
    collect() {
      this.set({ quantile: '0.5' }, loopDelay.percentile(50) / 1e9);
      this.set({ quantile: '0.99' }, loopDelay.percentile(99) / 1e9);
      this.set({ quantile: 'max' }, loopDelay.max / 1e9);
      loopDelay.reset();
    },
  });

  const pools: Array<Pick<AdapterPool, 'snapshot'>> = [];
  const slotGauge = (
    name: string,
    help: string,
    pick: (a: ReturnType<AdapterPool['snapshot']>['adapters'][number]) => number | null,
  ): Gauge<'adapter'> =>
    new prom.Gauge({
      name: `${prefix}${name}`,
      help,
      labelNames: ['adapter'],
      registers: [registry],
      collect() {
        this.reset();
        for (const pool of pools) {
          for (const adapter of pool.snapshot().adapters) {
            const value = pick(adapter);
            if (value !== null) this.set({ adapter: adapter.name }, value);
          }
        }
      },
    });
  slotGauge('slots_in_use', 'Connection slots the pool holds per adapter', (a) => a.inUse.length);
  slotGauge(
    'slot_limit',
    'The slot limit in force per adapter (configured, or learned from refusals)',
    (a) => a.limit,
  );
  slotGauge(
    'learned_slot_limit',
    'A slot limit learned from a controller that refused links',
    (a) => a.learnedLimit,
  );

  // Attempts already counted, per connection actor; reset when a new connect starts its list.
  const seen = new Map<string, { firstStartedAt: number; counted: Set<number> }>();

  const onSnapshot = (actorId: string, snapshot: unknown): void => {
    const status = (snapshot as { status?: unknown }).status;
    const context = connectionContextOf(snapshot);
    if (context === undefined) return;
    const first = context.attempts[0];
    if (first !== undefined) {
      let book = seen.get(actorId);
      if (book === undefined || book.firstStartedAt !== first.startedAt) {
        book = { firstStartedAt: first.startedAt, counted: new Set() };
        seen.set(actorId, book);
      }
      for (const attempt of context.attempts) {
        if (attempt.outcome === 'pending' || book.counted.has(attempt.number)) continue;
        book.counted.add(attempt.number);
        attempts.inc({
          adapter: attempt.adapter,
          outcome: attempt.outcome,
          class: attempt.cause?.class ?? 'none',
        });
        if (attempt.outcome === 'connected') {
          connects.inc({ adapter: attempt.adapter });
          const endedAt = attempt.startedAt + (attempt.durationMs ?? 0);
          timeToConnected.observe(
            { adapter: attempt.adapter },
            Math.max(0, endedAt - first.startedAt) / 1000,
          );
        }
      }
    }
    if (status !== undefined && status !== 'active') seen.delete(actorId);
  };

  const onAction = (snapshot: unknown, action: { type: string; params?: unknown }): void => {
    const context = connectionContextOf(snapshot);
    if (context === undefined) return;
    const params = (action.params ?? {}) as { event?: { type?: unknown; action?: unknown }; kind?: unknown };
    if (action.type === 'xstate.emit') {
      // The machine's emitted events (the same ones `actor.on(…)` delivers to an app).
      const emitted = params.event;
      if (emitted?.type === 'link-lost') linkLosses.inc({ adapter: context.adapter });
      else if (emitted?.type === 'escalation')
        escalations.inc({
          adapter: context.adapter,
          action: typeof emitted.action === 'string' ? emitted.action : 'unknown',
        });
    } else if (action.type === 'shareLedgerChange' && params.kind === 'reset') {
      resets.inc({ adapter: context.adapter });
    }
  };

  return {
    registry,
    contentType: registry.contentType,
    inspect(event) {
      try {
        if (event.type === '@xstate.snapshot') onSnapshot(event.actorRef.sessionId, event.snapshot);
        else if (event.type === '@xstate.action') onAction(event.actorRef.getSnapshot(), event.action);
      } catch {
        // Metrics must never break the machines they watch.
      }
    },
    observePool(pool) {
      if (typeof pool?.snapshot !== 'function') throw new TypeError('pool must be an AdapterPool');
      if (!pools.includes(pool)) pools.push(pool);
    },
    text: () => registry.metrics(),
    close() {
      loopDelay.disable();
      pools.length = 0;
      seen.clear();
    },
  };
}

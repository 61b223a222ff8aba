/**
 * The stall guard (main-thread side): a worker thread with its own event loop and its own D-Bus
 * connection that cancels a pending Connect out of band when this thread's event loop is blocked (a
 * synchronous CPU loop, a sync fs call on a hung mount, a native addon). A timer on the blocked loop
 * could not do it: it only runs once the loop runs again.
 *
 * The main loop stores a heartbeat (epoch ms) in a SharedArrayBuffer every `heartbeatMs`; the worker
 * reads it every `checkEveryMs`. Pending connects are announced to the worker before each Connect
 * and withdrawn after it. The worker's reports come back over a MessagePort that the main thread
 * drains synchronously (`receiveMessageOnPort`), so an attempt can tell, as soon as its Connect
 * fails, whether the guard cancelled it.
 */
import { dirname, extname, join } from 'node:path';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import type { StallGuardAction } from '../bluez/errors.js';
import { processLockTable } from './lock-hook.js';
import type { FromWorker, StallWorkerData, ToWorker } from './protocol.js';

/** Options of {@link StallGuard.start}. */
export interface StallGuardOptions {
  /** D-Bus address of the BlueZ bus (the worker opens its own connection there). */
  readonly busAddress: string;
  /** How long the main loop may miss its heartbeat while a Connect is pending. */
  readonly stallGuardMs: number;
  /** Bound of the out-of-band Disconnect. Default 5 000. */
  readonly disconnectTimeoutMs?: number;
  /** Called (on the main thread, once it runs again) for every action of the guard. */
  readonly onStall?: (stall: StallReport) => void;
  /** Called when the worker thread fails (it then guards nothing). */
  readonly onError?: (error: Error) => void;
  /** The worker also writes one line to stderr when it acts (the app's logger is blocked). Default true. */
  readonly logToStderr?: boolean;
}

/** What the guard did for one pending connect. */
export interface StallReport extends StallGuardAction {
  readonly adapter: string;
  readonly address: string;
  /** Epoch ms when the guard acted (during the block). */
  readonly at: number;
}

/** Event-loop delay figures (perf_hooks.monitorEventLoopDelay, 20 ms resolution), in ms. */
export interface EventLoopDelay {
  readonly meanMs: number;
  readonly maxMs: number;
  readonly p99Ms: number;
  /** Stalls the guard acted on since it started. */
  readonly stallsHandled: number;
}

function workerFile(): string {
  const here = fileURLToPath(import.meta.url);
  return join(dirname(here), `worker${extname(here)}`);
}

/** A running stall guard. Create with {@link StallGuard.start}; `close()` leaves nothing behind. */
export class StallGuard {
  readonly stallGuardMs: number;
  readonly #worker: Worker;
  readonly #reports: MessagePort;
  readonly #heartbeat: BigInt64Array;
  readonly #beat: NodeJS.Timeout;
  readonly #delay: IntervalHistogram;
  readonly #onStall: ((stall: StallReport) => void) | undefined;
  readonly #stalls = new Map<number, StallReport>();
  #nextId = 1;
  #handled = 0;
  #workerName: string | null = null;
  #closing: Promise<void> | undefined;
  readonly #exited: Promise<void>;

  private constructor(options: StallGuardOptions) {
    this.stallGuardMs = options.stallGuardMs;
    this.#onStall = options.onStall;
    const heartbeat = new SharedArrayBuffer(8);
    this.#heartbeat = new BigInt64Array(heartbeat);
    this.#store();
    const { port1, port2 } = new MessageChannel();
    this.#reports = port1;
    const data: StallWorkerData & { reports: MessagePort } = {
      busAddress: options.busAddress,
      stallGuardMs: options.stallGuardMs,
      checkEveryMs: Math.max(10, Math.min(100, Math.floor(options.stallGuardMs / 10))),
      disconnectTimeoutMs: options.disconnectTimeoutMs ?? 5000,
      heartbeat,
      locks: processLockTable.buffer,
      logToStderr: options.logToStderr ?? true,
      reports: port2,
    };
    this.#worker = new Worker(workerFile(), { workerData: data, transferList: [port2] });
    // Never what keeps the process alive; close() ends it on every path.
    this.#worker.unref();
    this.#worker.on('error', (error) => options.onError?.(error));
    this.#exited = new Promise<void>((resolve) => this.#worker.once('exit', () => resolve()));
    const heartbeatMs = Math.max(10, Math.min(1000, Math.floor(options.stallGuardMs / 4)));
    this.#beat = setInterval(() => {
      this.#store();
      this.#drain();
    }, heartbeatMs);
    this.#beat.unref();
    this.#delay = monitorEventLoopDelay({ resolution: 20 });
    this.#delay.enable();
  }

  /** Starts the worker and the heartbeat. */
  static start(options: StallGuardOptions): StallGuard {
    return new StallGuard(options);
  }

  #store(): void {
    Atomics.store(this.#heartbeat, 0, BigInt(Math.round(performance.timeOrigin + performance.now())));
  }

  /** Takes every report the worker has sent so far (synchronously). */
  #drain(): void {
    for (;;) {
      const received = receiveMessageOnPort(this.#reports);
      if (received === undefined) return;
      const message = received.message as FromWorker;
      if (message.type === 'ready') this.#workerName = message.uniqueName;
      if (message.type !== 'stall') continue;
      const report: StallReport = {
        adapter: message.adapter,
        address: message.address,
        stalledMs: Math.round(message.stalledMs),
        disconnect: message.disconnect,
        locksReleased: message.locksReleased,
        at: message.at,
      };
      this.#handled += 1;
      this.#stalls.set(message.id, report);
      this.#onStall?.(report);
    }
  }

  #post(message: ToWorker): void {
    this.#worker.postMessage(message);
  }

  /**
   * Announces a Connect about to be sent; call the returned function when it settled. The
   * returned function also tells whether the guard acted on this connect meanwhile.
   */
  connectPending(adapter: string, address: string): () => StallReport | undefined {
    const id = this.#nextId++;
    // A fresh heartbeat: time spent before this call is not the connect's.
    this.#store();
    this.#post({ type: 'pending', id, adapter, address });
    let settled = false;
    return () => {
      if (!settled) {
        settled = true;
        this.#post({ type: 'settled', id });
      }
      this.#drain();
      const report = this.#stalls.get(id);
      this.#stalls.delete(id);
      return report;
    };
  }

  /** Our worker's unique bus name once its connection is up (null before, or when it failed). */
  get workerBusName(): string | null {
    this.#drain();
    return this.#workerName;
  }

  /** The main loop's delay since the guard started. */
  eventLoopDelay(): EventLoopDelay {
    const ns = 1e6;
    const h = this.#delay;
    return {
      meanMs: Number.isNaN(h.mean) ? 0 : h.mean / ns,
      maxMs: h.max / ns,
      p99Ms: h.percentile(99) / ns,
      stallsHandled: this.#handled,
    };
  }

  /** Stops the heartbeat and the delay monitor, closes the worker's bus connection, ends the worker. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#beat);
      this.#delay.disable();
      this.#drain();
      this.#post({ type: 'close' });
      // The worker closes its bus and exits; if it cannot within a bound, it is terminated.
      const bound = setTimeout(() => void this.#worker.terminate(), 2000);
      await this.#exited;
      clearTimeout(bound);
      this.#reports.close();
    })();
    return this.#closing;
  }
}

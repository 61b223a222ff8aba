/**
 * Messages between the stall guard (main thread) and its worker. Plain data.
 * @internal
 */

/** Given to the worker at start (`workerData`). */
export interface StallWorkerData {
  readonly busAddress: string;
  readonly stallGuardMs: number;
  /** How often the worker looks at the heartbeat. */
  readonly checkEveryMs: number;
  /** Bound of the out-of-band Disconnect. */
  readonly disconnectTimeoutMs: number;
  /** BigInt64Array[1]: epoch ms (timeOrigin + now) of the main thread's last heartbeat. */
  readonly heartbeat: SharedArrayBuffer;
  /** The process's lock table (lock-hook.ts). */
  readonly locks: SharedArrayBuffer;
  /** Write one line to stderr (fd 2, synchronously) when the guard acts. */
  readonly logToStderr: boolean;
}

/** Main → worker. */
export type ToWorker =
  | { readonly type: 'pending'; readonly id: number; readonly adapter: string; readonly address: string }
  | { readonly type: 'settled'; readonly id: number }
  | { readonly type: 'close' };

/** Worker → main (through the report port, drained synchronously by the main thread). */
export type FromWorker =
  | { readonly type: 'ready'; readonly uniqueName: string | null; readonly error: string | null }
  | {
      readonly type: 'stall';
      readonly id: number;
      readonly adapter: string;
      readonly address: string;
      readonly stalledMs: number;
      readonly disconnect: string;
      readonly locksReleased: number;
      /** Epoch ms when the guard acted. */
      readonly at: number;
    }
  | { readonly type: 'closed' };

/**
 * Device1.Connect calls the connection machine may walk away from. BlueZ cannot cancel a pending
 * Connect through the call itself (bluez src/device.c answers it only when the connection attempt
 * ends: with success, an error, or "Cancelled" after a Device1.Disconnect). When the machine leaves
 * `connecting` (CANCEL, the attempt deadline, a requeue) the attempt's AbortSignal fires, but
 * bluetoothd keeps connecting; if the Disconnect meant to cancel it hangs, the Connect can still
 * succeed after the teardown looked and saw no link, leaving a link up that nobody holds.
 *
 * So the Connect call is never aborted, only bounded by its own deadline: the attempt stops waiting
 * for it on abort, and the teardown waits (bounded) for its reply before it calls the link down.
 */

/** How an abandoned Connect call ended, as far as the teardown could wait for it. */
export type ConnectReply = 'connected' | 'failed' | 'pending';

/** The Connect calls of one set of connection actors that have not replied yet, by device. */
export class PendingConnects {
  private readonly calls = new Map<string, Promise<'connected' | 'failed'>>();

  /** Keeps `call` here until it settles (its rejection is handled here too); returns `call`. */
  track(adapter: string, address: string, call: Promise<void>): Promise<void> {
    const key = `${adapter}/${address}`;
    const reply = call.then(
      () => 'connected' as const,
      () => 'failed' as const,
    );
    this.calls.set(key, reply);
    void reply.then(() => {
      if (this.calls.get(key) === reply) this.calls.delete(key);
    });
    return call;
  }

  /** True while a Connect to `address` on `adapter` has not replied. */
  has(adapter: string, address: string): boolean {
    return this.calls.has(`${adapter}/${address}`);
  }

  /**
   * Waits at most `timeoutMs` for the pending Connect's reply: `connected` (bluetoothd made the
   * link), `failed` (an error, "Cancelled", or the call's own deadline), `pending` (still no
   * reply), or `failed` at once when no Connect is pending.
   * @throws `signal.reason` on abort
   */
  reply(adapter: string, address: string, timeoutMs: number, signal: AbortSignal): Promise<ConnectReply> {
    const pending = this.calls.get(`${adapter}/${address}`);
    if (pending === undefined) return Promise.resolve('failed');
    return new Promise<ConnectReply>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      let done = false;
      const finish = (): boolean => {
        if (done) return false;
        done = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        return true;
      };
      const onAbort = (): void => {
        if (finish()) reject(signal.reason);
      };
      const timer = setTimeout(() => {
        if (finish()) resolve('pending');
      }, timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
      void pending.then((outcome) => {
        if (finish()) resolve(outcome);
      });
    });
  }
}

/**
 * Settles with `promise`, or rejects with `signal.reason` as soon as the signal fires (then
 * `promise` goes on alone; its rejection must be handled elsewhere). No listener is left behind.
 */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}

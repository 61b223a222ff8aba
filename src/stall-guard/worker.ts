/**
 * The stall guard's worker thread: its own event loop and its own D-Bus connection. It watches the
 * main thread's heartbeat (a SharedArrayBuffer); when the main loop has missed it for stallGuardMs
 * while a Connect is pending, it cancels each pending connect with a bounded Device1.Disconnect on
 * that connect's adapter, releases this process's announced slot locks, and reports what it did.
 */
import { closeSync, writeSync } from 'node:fs';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import { openOutOfBandBluez } from '../bluez/out-of-band.js';
import { LockSlot, lockTable } from './lock-hook.js';
import type { FromWorker, StallWorkerData, ToWorker } from './protocol.js';

const data = workerData as StallWorkerData & { reports: MessagePort };
const heartbeat = new BigInt64Array(data.heartbeat);
const locks = lockTable(data.locks);
const reports = data.reports;
const bluez = openOutOfBandBluez(data.busAddress);
const pending = new Map<number, { adapter: string; address: string; acted: boolean }>();
let closing = false;

const now = (): number => performance.timeOrigin + performance.now();
const report = (message: FromWorker): void => reports.postMessage(message);

bluez.ready(Math.max(1000, data.disconnectTimeoutMs)).then(
  () => report({ type: 'ready', uniqueName: bluez.uniqueName ?? null, error: null }),
  (err: unknown) => report({ type: 'ready', uniqueName: null, error: String(err) }),
);

function releaseLocks(): number {
  let released = 0;
  for (let i = 0; i < locks.state.length; i++) {
    if (Atomics.compareExchange(locks.state, i, LockSlot.held, LockSlot.closedByGuard) !== LockSlot.held)
      continue;
    try {
      closeSync(Atomics.load(locks.fd, i));
      released += 1;
    } catch {
      // Already closed: the lock is gone either way.
    }
  }
  return released;
}

async function act(
  id: number,
  entry: { adapter: string; address: string },
  stalledMs: number,
): Promise<void> {
  let disconnect = 'sent';
  try {
    await bluez.disconnect(entry.adapter, entry.address, data.disconnectTimeoutMs);
  } catch (err) {
    disconnect = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
  }
  const locksReleased = releaseLocks();
  const at = now();
  if (data.logToStderr) {
    // Synchronous: the main thread, which owns the app's logger, is blocked right now.
    writeSync(
      2,
      `bluez-connection-manager stall guard: event loop blocked for ${Math.round(stalledMs)} ms while connecting ` +
        `${entry.address} on ${entry.adapter}; Disconnect: ${disconnect}; slot locks released: ${locksReleased}\n`,
    );
  }
  report({
    type: 'stall',
    id,
    adapter: entry.adapter,
    address: entry.address,
    stalledMs,
    disconnect,
    locksReleased,
    at,
  });
}

const timer = setInterval(() => {
  if (closing) return;
  const silence = now() - Number(Atomics.load(heartbeat, 0));
  if (silence < data.stallGuardMs) return;
  for (const [id, entry] of pending) {
    if (entry.acted) continue;
    entry.acted = true;
    void act(id, entry, silence);
  }
}, data.checkEveryMs);

parentPort?.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'pending':
      pending.set(message.id, { adapter: message.adapter, address: message.address, acted: false });
      return;
    case 'settled':
      pending.delete(message.id);
      return;
    case 'close':
      closing = true;
      clearInterval(timer);
      void bluez.close().finally(() => {
        report({ type: 'closed' });
        reports.close();
        parentPort?.close();
      });
      return;
  }
});

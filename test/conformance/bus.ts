import { DBusError, Variant, sessionBus } from 'dbus-next';
import type { MessageBus } from 'dbus-next';
import { callWithDeadline } from '../../src/testing/peripheral/index.js';

/** Opens a client connection to a bus address (TCP guest bus or private unix bus). */
export function openBus(address: string): MessageBus {
  const bus = sessionBus({
    busAddress: address,
    authMethods: address.startsWith('tcp:') ? ['ANONYMOUS'] : ['EXTERNAL'],
  });
  // A bus error must fail the scenario that caused it, not crash the test worker.
  bus.on('error', () => {});
  return bus;
}

/** Result of a method call as the conformance trace records it. */
export type CallOutcome = { ok: true; body: unknown[] } | { ok: false; error: string; text: string };

/** Calls a method with a deadline and returns the outcome instead of throwing D-Bus errors. */
export async function callOutcome(
  bus: MessageBus,
  path: string,
  iface: string,
  member: string,
  signature = '',
  body: unknown[] = [],
  timeoutMs = 30_000,
): Promise<CallOutcome> {
  try {
    const reply = await callWithDeadline(
      bus,
      { destination: 'org.bluez', path, interface: iface, member, signature, body },
      timeoutMs,
    );
    return { ok: true, body: reply.map(plain) };
  } catch (err) {
    if (err instanceof DBusError) return { ok: false, error: err.type, text: err.text };
    throw err;
  }
}

/** Variants, Buffers and nested dicts as plain JSON-able values. */
export function plain(value: unknown): unknown {
  if (value instanceof Variant) return plain(value.value);
  if (Buffer.isBuffer(value)) return [...value];
  if (Array.isArray(value)) return value.map(plain);
  if (typeof value === 'bigint') return Number(value);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>).map(([k, v]) => [k, plain(v)]),
    );
  }
  return value;
}

/** `/org/bluez/hci0/dev_00_AA_01_01_00_01` for adapter hci0 and address 00:AA:01:01:00:01. */
export function devicePath(adapterPath: string, address: string): string {
  return `${adapterPath}/dev_${address.replace(/:/g, '_')}`;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

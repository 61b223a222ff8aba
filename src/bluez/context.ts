/**
 * What every operation module needs: the shared bus, the mirror and the defaults (docs/defaults.md).
 */
import type { BusCallOptions, MethodCall, SharedBus } from './bus.js';
import type { BluezMirror } from './mirror.js';
import type { CallOptions } from './types.js';
import { validateSignal, validateTimeoutMs } from './validate.js';
import { IFACE, unwrapGetReply, variant } from './variant.js';

/** Defaults used by the operations (docs/defaults.md). */
export interface BluezDefaults {
  /** Method calls. Default 25 000. */
  callTimeoutMs: number;
  /** Property reads/writes. Default 5 000. */
  propertyTimeoutMs: number;
  /** Each step of a (verified) disconnect. Default 5 000. */
  disconnectTimeoutMs: number;
}

/** The numbers of docs/defaults.md. */
export const DEFAULTS: Readonly<BluezDefaults> = Object.freeze({
  callTimeoutMs: 25_000,
  propertyTimeoutMs: 5_000,
  disconnectTimeoutMs: 5_000,
});

/** Shared state of one BluezClient. @internal */
export interface BluezContext {
  readonly bus: SharedBus;
  readonly mirror: BluezMirror;
  readonly defaults: BluezDefaults;
}

/** Resolves per-call options against a default deadline, validating before any I/O. */
export function resolveCall(
  options: CallOptions | undefined,
  defaultTimeoutMs: number,
  context: { adapter?: string; device?: string } = {},
): BusCallOptions {
  const timeoutMs =
    options?.timeoutMs === undefined ? defaultTimeoutMs : validateTimeoutMs(options.timeoutMs, 'timeoutMs');
  const signal = validateSignal(options?.signal);
  return { timeoutMs, signal, ...context };
}

/** A call to org.bluez. */
export function bluezCall(
  path: string,
  iface: string,
  member: string,
  signature?: string,
  body?: unknown[],
): MethodCall {
  return { destination: 'org.bluez', path, interface: iface, member, signature, body };
}

/** Properties.Get on org.bluez, Variant unwrapped. */
export async function getProperty(
  ctx: BluezContext,
  path: string,
  iface: string,
  name: string,
  options: BusCallOptions,
): Promise<unknown> {
  const body = await ctx.bus.call(bluezCall(path, IFACE.properties, 'Get', 'ss', [iface, name]), options);
  return unwrapGetReply(body);
}

/** Properties.Set on org.bluez. */
export async function setProperty(
  ctx: BluezContext,
  path: string,
  iface: string,
  name: string,
  signature: string,
  value: unknown,
  options: BusCallOptions,
): Promise<void> {
  await ctx.bus.call(
    bluezCall(path, IFACE.properties, 'Set', 'ssv', [iface, name, variant(signature, value)]),
    options,
  );
}

/** Milliseconds left of a deadline that started at `startedAt` (never negative). */
export function remaining(startedAt: number, timeoutMs: number): number {
  return Math.max(0, timeoutMs - (performance.now() - startedAt));
}

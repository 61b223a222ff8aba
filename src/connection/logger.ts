/**
 * The caller's logger, made safe to call from inside the library's event delivery: log lines are
 * written from XState `emit` listeners and subscriptions, where an exception thrown by app code
 * would escape into the actor system (and, from an emitted-event listener, end the process).
 */
import type { ConnectionLogger } from './options.js';

const LEVELS = ['debug', 'info', 'warn', 'error'] as const;

/**
 * Validates `logger` (each level, when present, must be a function) and returns a logger whose
 * methods never throw: a failing log call is dropped, the connection goes on.
 * @throws TypeError naming the field, before any I/O
 */
export function guardLogger(logger: unknown, field = 'logger'): ConnectionLogger {
  if (logger === undefined) return {};
  if (typeof logger !== 'object' || logger === null) {
    throw new TypeError(`${field} must be an object with debug/info/warn/error methods`);
  }
  const source = logger as Record<string, unknown>;
  const guarded: ConnectionLogger = {};
  for (const level of LEVELS) {
    const method = source[level];
    if (method === undefined) continue;
    if (typeof method !== 'function') {
      throw new TypeError(`${field}.${level} must be a function, got ${typeof method}`);
    }
    guarded[level] = (fields, message) => {
      try {
        Reflect.apply(method, logger, [fields, message]);
      } catch {
        // A logger that throws must not take a connection down with it.
      }
    };
  }
  return guarded;
}

/**
 * What `establishConnection` rejects with: a library error that lists its attempts. Whatever
 * escaped the machine (a raw dbus-next DBusError from a step outside it, an adapter lookup that
 * failed before the first attempt, an actor that stopped with an error) becomes a
 * {@link ConnectionFailedError} whose attempts are the machine's, plus the step that failed when no
 * attempt recorded it. Cancellation (the caller's AbortSignal, overallTimeoutMs) keeps its
 * AbortError/TimeoutError, bad input its TypeError/RangeError, and a lock the caller configured
 * (strict lock timeout, a refused lock path, no permission, no flock binding) its documented lock
 * error (docs/errors.md): those name a setting or the machine's files, not a connect failure.
 */
import {
  BluezError,
  ConnectionFailedError,
  LockTimeoutError,
  classifyError,
  isAbortError,
  toBluezError,
  type AttemptRecord,
  type FailureClass,
} from '../bluez/errors.js';
import { LockPathError, LockPermissionError, LockUnavailableError } from '../lock/errors.js';
import type { ConnectionAttempt } from '../machines/connection-contracts.js';
import { toAttemptRecords } from '../machines/connection.js';

/** True for the errors that are not connect failures: cancellation and bad input. */
function passesThrough(err: unknown): boolean {
  if (
    err instanceof LockTimeoutError ||
    err instanceof LockPathError ||
    err instanceof LockPermissionError ||
    err instanceof LockUnavailableError
  )
    return true;
  if (err instanceof BluezError) return err instanceof ConnectionFailedError && err.attempts.length > 0;
  if (isAbortError(err)) return true;
  if (err instanceof Error && err.name === 'TimeoutError') return true;
  return err instanceof TypeError || err instanceof RangeError;
}

/**
 * The rejection of an `establishConnection` call for `address`, typed, with every attempt.
 * @param attempts - the machine's attempts so far (empty when it never ran)
 */
export function typedRejection(
  err: unknown,
  address: string,
  attempts: readonly ConnectionAttempt[],
  adapter: string | undefined,
): unknown {
  if (passesThrough(err)) return err;
  const typed = toBluezError(err, { adapter, device: address });
  const errorClass: FailureClass = typed instanceof BluezError ? typed.errorClass : classifyError(err).class;
  const code = typed instanceof BluezError ? typed.code : 'UNKNOWN';
  const message = typed instanceof Error ? typed.message : String(err);
  const records: AttemptRecord[] = toAttemptRecords(attempts);
  const last = attempts[attempts.length - 1];
  // The machine's records carry every failed attempt; a failure outside them (before the first
  // attempt, or one the machine did not record) is added as the attempt it ended.
  if (records.length === 0 || last === undefined || last.cause === null) {
    records.push({
      attempt: last !== undefined && last.cause === null ? last.number : attempts.length + 1,
      adapter: adapter ?? last?.adapter,
      errorClass,
      code,
      message: `${errorClass}: ${message}`,
    });
  }
  return new ConnectionFailedError(`${address}: failed to connect: ${message}`, {
    device: address,
    adapter: adapter ?? last?.adapter,
    attempts: records,
    errorClass,
    dbusName: typed instanceof BluezError ? typed.dbusName : undefined,
    cause: err,
  });
}

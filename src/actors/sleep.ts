/**
 * A timer that an AbortSignal ends early: resolves after `ms`, or rejects with `signal.reason`
 * (the caller's own reason, not a generic AbortError, which `timers/promises` would give) and
 * leaves neither the timer nor the abort listener behind.
 */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

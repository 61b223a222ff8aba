/**
 * flock(2) for Node, which has none in core. Bound through koffi, an FFI that ships prebuilt
 * binaries for linux x64, arm64 and armhf (a Raspberry Pi installs it without a compiler), and
 * loaded on first use only, so a user who never enables the locks never loads it.
 *
 * Only non-blocking calls are made (LOCK_EX | LOCK_NB): a busy lock answers EWOULDBLOCK at once and
 * the caller polls, so the event loop never waits in the kernel.
 */
import { constants } from 'node:os';
import type Koffi from 'koffi';
import { LockUnavailableError } from './errors.js';

const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

/** The two calls the locks need. */
export interface FlockBinding {
  /** flock(fd, LOCK_EX | LOCK_NB): true when taken, false when another open file holds it. */
  tryLock(fd: number): boolean;
  /** flock(fd, LOCK_UN). Closing the fd releases the lock as well. */
  unlock(fd: number): void;
}

type FlockFn = (fd: number, operation: number) => number;

let loading: Promise<FlockBinding> | undefined;

async function bind(): Promise<FlockBinding> {
  let koffi: Pick<typeof Koffi, 'load' | 'errno'>;
  try {
    koffi = (await import('koffi')).default;
  } catch (err) {
    throw new LockUnavailableError(
      `cross-process locks need the package "koffi" (an optional peer dependency), which could not be loaded: ${
        err instanceof Error ? err.message : String(err)
      }`,
      { cause: err },
    );
  }
  let flock: FlockFn;
  try {
    // dlopen(NULL): the process's own symbols, libc's flock among them (glibc and musl alike).
    flock = koffi.load(null).func('int flock(int fd, int operation)') as FlockFn;
  } catch (err) {
    throw new LockUnavailableError(`flock(2) could not be bound through koffi: ${String(err)}`, {
      cause: err,
    });
  }
  const call = (fd: number, operation: number): number => {
    for (;;) {
      if (flock(fd, operation) === 0) return 0;
      const errno = koffi.errno();
      if (errno !== constants.errno.EINTR) return errno;
    }
  };
  return {
    tryLock(fd) {
      const errno = call(fd, LOCK_EX | LOCK_NB);
      if (errno === 0) return true;
      if (errno === constants.errno.EWOULDBLOCK || errno === constants.errno.EAGAIN) return false;
      throw Object.assign(new Error(`flock(${fd}, LOCK_EX|LOCK_NB) failed with errno ${errno}`), { errno });
    },
    unlock(fd) {
      call(fd, LOCK_UN);
    },
  };
}

/**
 * The flock binding, loaded once (dynamic import of koffi).
 * @throws LockUnavailableError when koffi is not installed or cannot bind flock
 */
export function loadFlock(): Promise<FlockBinding> {
  loading ??= bind().catch((err: unknown) => {
    loading = undefined;
    throw err;
  });
  return loading;
}

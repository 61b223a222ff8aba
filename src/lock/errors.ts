/**
 * Errors of the cross-process locks. Each is a {@link BluezError} with a stable `code` and advice
 * (there is no D-Bus name: these come from the file system).
 */
import { BluezError, type BluezErrorOptions } from '../bluez/errors.js';

/** A lock path that is not a plain file of its own: a symlink, a FIFO, a directory, a hard link. */
export class LockPathError extends BluezError {
  /** The refused path. */
  readonly path: string;
  /** @param message - what is wrong; @param path - the lock path; @param options - adapter, cause */
  constructor(message: string, path: string, options: BluezErrorOptions = {}) {
    super('LOCK_PATH_REFUSED', 'other', message, {
      advice:
        `Nothing was opened or written through ${path}. Lock files must be plain files in the lock ` +
        'directory: remove whatever is at that path (someone may have planted it) and let the library ' +
        'create the file, or point the lock `dir` at a directory only trusted users can write.',
      ...options,
    });
    this.path = path;
  }
}

/** The lock file (or its directory) cannot be created or opened: EACCES, EPERM, EROFS. */
export class LockPermissionError extends BluezError {
  /** The path that could not be opened. */
  readonly path: string;
  /** @param message - what failed; @param path - the lock path; @param options - adapter, cause */
  constructor(message: string, path: string, options: BluezErrorOptions = {}) {
    super('LOCK_PERMISSION_DENIED', 'other', message, {
      advice:
        `This process may not create or open ${path}. Every service that shares the adapter must be ` +
        'able to open the same lock files: create a group-writable lock directory, e.g. ' +
        '`install -d -m 2775 -g bluetooth /run/bleak-cm` (a tmpfiles.d entry makes it survive reboots), ' +
        'add the service users to that group, and set the lock `dir` to it in every service (Python ' +
        'and Node alike); or run the service as root.',
      ...options,
    });
    this.path = path;
  }
}

/** Locks are enabled but flock(2) cannot be called: the optional peer dependency `koffi` is missing. */
export class LockUnavailableError extends BluezError {
  /** @param message - why; @param options - cause */
  constructor(message: string, options: BluezErrorOptions = {}) {
    super('LOCK_UNAVAILABLE', 'other', message, {
      advice:
        'Cross-process locks call flock(2) through the optional peer dependency `koffi` (prebuilt ' +
        'for linux x64, arm64 and armhf, no compiler needed). Install it next to this package ' +
        '(`npm install koffi`) or turn the `lock` / `scanLock` options off.',
      ...options,
    });
  }
}

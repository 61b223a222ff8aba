/**
 * Opening a lock file safely. The file is only ever opened read-only (flock needs no write access),
 * never through a symlink (O_NOFOLLOW), and refused unless it is a regular file with one link: a
 * symlink, FIFO, device or hard link planted at a lock path in a shared directory is not followed,
 * and nothing is written anywhere. A file we create gets mode 0666 explicitly (fchmod), so that the
 * umask of whichever service came first does not lock the others out.
 */
import { constants, type Stats } from 'node:fs';
import { lstat, open, type FileHandle } from 'node:fs/promises';
import { LockPathError, LockPermissionError } from './errors.js';

const { O_RDONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = constants;

function code(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null ? (err as { code?: string }).code : undefined;
}

function refuseKind(path: string, stats: Stats, adapter: string | undefined): void {
  if (stats.isSymbolicLink())
    throw new LockPathError(`refusing lock path ${path}: it is a symbolic link`, path, { adapter });
  if (!stats.isFile())
    throw new LockPathError(`refusing lock path ${path}: it is not a regular file`, path, { adapter });
  if (stats.nlink !== 1)
    throw new LockPathError(`refusing lock path ${path}: it has ${stats.nlink} hard links`, path, {
      adapter,
    });
}

function translate(err: unknown, path: string, adapter: string | undefined): unknown {
  switch (code(err)) {
    case 'ELOOP':
      return new LockPathError(`refusing lock path ${path}: it is a symbolic link`, path, {
        adapter,
        cause: err,
      });
    case 'EACCES':
    case 'EPERM':
    case 'EROFS':
      return new LockPermissionError(`permission denied opening lock file ${path} (${code(err)})`, path, {
        adapter,
        cause: err,
      });
    case 'ENOENT':
    case 'ENOTDIR':
      return new LockPathError(`lock directory of ${path} does not exist`, path, {
        adapter,
        cause: err,
        advice:
          'Create the lock directory (every service sharing the adapter must use the same one) or fix `dir`.',
      });
    default:
      return err;
  }
}

/**
 * Opens (creating it 0666 if needed) the lock file at `path`, read-only.
 * @throws LockPathError for a symlink, a non-regular file, a hard link, or a missing directory
 * @throws LockPermissionError when the file or directory may not be opened/created
 */
export async function openLockFile(path: string, adapter?: string): Promise<FileHandle> {
  for (let tries = 0; ; tries += 1) {
    // Look before opening: opening a device node or FIFO can have effects of its own.
    const before = await lstat(path).catch((err: unknown) => {
      if (code(err) === 'ENOENT') return undefined;
      throw translate(err, path, adapter);
    });
    if (before !== undefined) refuseKind(path, before, adapter);
    let handle: FileHandle;
    let created = false;
    try {
      if (before === undefined) {
        // O_EXCL never follows a symlink either: one planted meanwhile makes this EEXIST.
        handle = await open(path, O_RDONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NONBLOCK, 0o666);
        created = true;
      } else {
        handle = await open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
      }
    } catch (err) {
      // Created or removed between lstat and open: look again (bounded).
      if ((code(err) === 'EEXIST' || code(err) === 'ENOENT') && tries < 3) continue;
      throw translate(err, path, adapter);
    }
    try {
      // The object actually opened (the path may have been swapped after lstat).
      refuseKind(path, await handle.stat(), adapter);
      if (created) await handle.chmod(0o666);
      return handle;
    } catch (err) {
      await handle.close().catch(() => {});
      throw translate(err, path, adapter);
    }
  }
}

/**
 * The hook between the stall guard and a cross-process slot lock module (flock on files under /run).
 * flock locks belong to the open file description, which the whole process shares: a worker thread
 * can release a lock the main thread took by closing that fd, even while the main thread is blocked.
 *
 * A lock module announces each held lock with {@link stallGuardLocks}.held(fd, label) and, before it
 * closes the fd itself, calls `release()` on the handle: `true` means the fd is still the module's to
 * close; `false` means the stall guard already closed it (closing it again could close an unrelated
 * fd that reused the number). Ownership is decided with one atomic compare-and-swap per lock in a
 * SharedArrayBuffer both threads see, so neither side can close the fd twice.
 */

/** Lock table slots (one per lock held at a time in this process). */
export const LOCK_SLOTS = 64;

/** Slot states. */
export const LockSlot = Object.freeze({ free: 0, held: 1, closedByGuard: 2 });

/** The shared table: `state[i]` (see {@link LockSlot}) and `fd[i]`. @internal */
export interface LockTable {
  readonly buffer: SharedArrayBuffer;
  readonly state: Int32Array;
  readonly fd: Int32Array;
}

/** The table over a shared buffer (main thread: a new one; worker: the one it was given). @internal */
export function lockTable(buffer = new SharedArrayBuffer(LOCK_SLOTS * 2 * 4)): LockTable {
  return {
    buffer,
    state: new Int32Array(buffer, 0, LOCK_SLOTS),
    fd: new Int32Array(buffer, LOCK_SLOTS * 4, LOCK_SLOTS),
  };
}

/** This process's table (main thread). @internal */
export const processLockTable: LockTable = lockTable();

/** A held lock as the stall guard knows it. */
export interface HeldLockHandle {
  /**
   * Call before closing the fd yourself. `true`: close it (the guard will not touch it any more);
   * `false`: the stall guard already closed it (the lock is released; do not close the number).
   */
  release(): boolean;
}

/** What a lock module calls. */
export interface StallGuardLockHook {
  /** Announces a held flock fd. When every slot is taken the lock is simply not guarded. */
  held(fd: number, label: string): HeldLockHandle;
  /** Locks currently announced (for tests and doctor output). */
  heldCount(): number;
}

/** The hook for this process's lock module (src/lock). */
export const stallGuardLocks: StallGuardLockHook = {
  held(fd, _label) {
    if (!Number.isInteger(fd) || fd < 0) throw new RangeError(`fd must be a file descriptor, got ${fd}`);
    const t = processLockTable;
    for (let i = 0; i < LOCK_SLOTS; i++) {
      if (Atomics.load(t.state, i) !== LockSlot.free) continue;
      Atomics.store(t.fd, i, fd);
      if (Atomics.compareExchange(t.state, i, LockSlot.free, LockSlot.held) !== LockSlot.free) continue;
      let released = false;
      return {
        release() {
          if (released) return false;
          released = true;
          const previous = Atomics.compareExchange(t.state, i, LockSlot.held, LockSlot.free);
          if (previous === LockSlot.closedByGuard) {
            Atomics.store(t.state, i, LockSlot.free);
            return false;
          }
          return true;
        },
      };
    }
    return { release: () => true };
  },
  heldCount() {
    let n = 0;
    for (let i = 0; i < LOCK_SLOTS; i++)
      if (Atomics.load(processLockTable.state, i) === LockSlot.held) n += 1;
    return n;
  },
};

/**
 * Cross-process connection-slot locks and scan locks (flock(2) on files shared with the Python
 * library bleak-connection-manager), and a read-only view of who holds them.
 */
export {
  resolveScanLockOptions,
  resolveSlotLockOptions,
  scanLockPath,
  slotLockPath,
  SCAN_LOCK_DEFAULTS,
  SLOT_LOCK_DEFAULTS,
  type ResolvedScanLock,
  type ResolvedSlotLock,
  type ScanLockOptions,
  type SlotLockOptions,
} from './config.js';
export {
  acquireScanLock,
  acquireSlotLock,
  heldLocks,
  type AcquireOptions,
  type HeldLock,
  type LockAcquisition,
} from './acquire.js';
export { LockPathError, LockPermissionError, LockUnavailableError } from './errors.js';
export { lockHolders, parseProcLocks, type LockFileState, type LockHolderQuery } from './holders.js';

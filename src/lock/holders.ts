/**
 * Who holds the lock files: the lock files in a directory (matched by the templates) against the
 * kernel's table of file locks, /proc/locks (proc(5)), by device and inode. Read-only: nothing is
 * opened or locked, so looking never disturbs a service that is acquiring.
 */
import { lstat, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SCAN_LOCK_DEFAULTS, SLOT_LOCK_DEFAULTS } from './config.js';

/** One lock file and its holders. */
export interface LockFileState {
  readonly path: string;
  readonly kind: 'slot' | 'scan';
  readonly adapter: string;
  /** Slot number, null for a scan lock. */
  readonly slot: number | null;
  /**
   * Pids holding a flock on the file (as /proc/locks shows them; 0 for a holder in another pid
   * namespace). Empty: free.
   */
  readonly holders: readonly number[];
  /** Processes waiting in a blocking flock on it (Python's and ours never block; others might). */
  readonly waiters: readonly number[];
}

/** Where to look. Defaults are the library's (and the Python library's) defaults. */
export interface LockHolderQuery {
  dir?: string;
  slotTemplate?: string;
  scanTemplate?: string;
  /** Alternative /proc/locks text (tests). */
  procLocks?: string;
}

interface KernelLock {
  readonly dev: string;
  readonly inode: bigint;
  readonly pid: number;
  readonly waiting: boolean;
}

/** Parses /proc/locks lines of FLOCK locks ("1: FLOCK  ADVISORY  WRITE 1234 00:1a:5678 0 EOF"). */
export function parseProcLocks(text: string): KernelLock[] {
  const out: KernelLock[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*\d+:\s+(->\s+)?FLOCK\s+\S+\s+\S+\s+(\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/i.exec(line);
    if (m === null) continue;
    out.push({
      waiting: m[1] !== undefined,
      pid: Number(m[2]),
      dev: `${parseInt(m[3] ?? '0', 16)}:${parseInt(m[4] ?? '0', 16)}`,
      inode: BigInt(m[5] ?? '0'),
    });
  }
  return out;
}

/** glibc's gnu_dev_major / gnu_dev_minor of a st_dev. */
function majorMinor(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

function templateRegex(template: string): RegExp {
  const escaped = template.replace(/[.*+?^$()|[\]\\]/g, '\\$&');
  return new RegExp(
    `^${escaped.replace(/\{adapter\}/g, '(?<adapter>[^/]+?)').replace(/\{slot\}/g, '(?<slot>\\d+)')}$`,
  );
}

/**
 * The slot and scan lock files in `dir` with the pids that hold them, slot files first, by adapter
 * and slot. Files that are not regular (a planted symlink) are left out.
 */
export async function lockHolders(query: LockHolderQuery = {}): Promise<LockFileState[]> {
  const dir = query.dir ?? SLOT_LOCK_DEFAULTS.dir;
  const slotRe = templateRegex(query.slotTemplate ?? SLOT_LOCK_DEFAULTS.template);
  const scanRe = templateRegex(query.scanTemplate ?? SCAN_LOCK_DEFAULTS.template);
  const names = await readdir(dir).catch(() => [] as string[]);
  const kernel = parseProcLocks(query.procLocks ?? (await readFile('/proc/locks', 'utf8').catch(() => '')));
  const out: LockFileState[] = [];
  for (const name of names) {
    const slotMatch = slotRe.exec(name);
    const scanMatch = slotMatch === null ? scanRe.exec(name) : null;
    const match = slotMatch ?? scanMatch;
    if (match === null) continue;
    const path = join(dir, name);
    const stats = await lstat(path, { bigint: true }).catch(() => undefined);
    if (stats === undefined || !stats.isFile()) continue;
    const dev = majorMinor(stats.dev);
    const on = kernel.filter((k) => k.inode === stats.ino && k.dev === dev);
    out.push({
      path,
      kind: slotMatch !== null ? 'slot' : 'scan',
      adapter: match.groups?.adapter ?? '',
      slot: slotMatch !== null ? Number(slotMatch.groups?.slot) : null,
      holders: on.filter((k) => !k.waiting).map((k) => k.pid),
      waiters: on.filter((k) => k.waiting).map((k) => k.pid),
    });
  }
  return out.sort(
    (a, b) =>
      (a.kind === b.kind ? 0 : a.kind === 'slot' ? -1 : 1) ||
      a.adapter.localeCompare(b.adapter, 'en', { numeric: true }) ||
      (a.slot ?? 0) - (b.slot ?? 0),
  );
}

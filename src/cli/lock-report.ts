/**
 * The lock files a host's services share (slot and scan locks, the Python library's names) and
 * who holds them, for `bluez-cm doctor` and `bluez-cm locks`. Read-only: /proc/locks and
 * /proc/<pid>/comm, nothing is opened or locked.
 */
import { readFile } from 'node:fs/promises';
import { lockHolders, type LockFileState } from '../lock/holders.js';

/** One lock file with its holders' process names. */
export interface LockReportEntry extends LockFileState {
  /** `comm` of each holder (same order as `holders`); null when /proc does not say. */
  readonly holderNames: ReadonlyArray<string | null>;
}

/** What the lock directory shows. */
export interface LockReport {
  readonly dir: string;
  readonly files: readonly LockReportEntry[];
}

async function comm(pid: number): Promise<string | null> {
  if (pid <= 0) return null;
  return (await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '')).trim() || null;
}

/** Reads the lock files in `dir` and their holders. */
export async function readLockReport(dir: string): Promise<LockReport> {
  const states = await lockHolders({ dir });
  const files = await Promise.all(
    states.map(async (s) => ({ ...s, holderNames: await Promise.all(s.holders.map(comm)) })),
  );
  return { dir, files };
}

/** `pid 1234 (python3)` for each holder, or `free`. */
export function describeHolders(entry: LockReportEntry): string {
  if (entry.holders.length === 0) return 'free';
  return entry.holders
    .map((pid, i) => {
      const name = entry.holderNames[i];
      const who = pid === 0 ? 'a process in another pid namespace' : `pid ${pid}`;
      return name === null || name === undefined ? who : `${who} (${name})`;
    })
    .join(', ');
}

/** `hci0 slot 1` / `hci0 scan`. */
export function lockName(entry: LockFileState): string {
  return entry.kind === 'slot' ? `${entry.adapter} slot ${entry.slot}` : `${entry.adapter} scan`;
}

/**
 * The slot and scan locks against real files and real processes: a Python service using
 * fcntl.flock on the same file names, SIGKILL of a holder, a planted symlink, timeouts, and the
 * read-only view of holders from /proc/locks.
 */
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LockTimeoutError } from '../../src/bluez/errors.js';
import {
  acquireScanLock,
  acquireSlotLock,
  heldLocks,
  lockHolders,
  LockPathError,
  resolveScanLockOptions,
  resolveSlotLockOptions,
  slotLockPath,
} from '../../src/lock/index.js';
import { startPythonHolder, type PythonHolder } from './python-holder.js';

let dir: string;
const pythons: PythonHolder[] = [];
const openFds = (): number => readdirSync('/proc/self/fd').length;
let fdsBefore = 0;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bcm-locks-'));
  fdsBefore = openFds();
});
afterEach(async () => {
  for (const p of pythons.splice(0)) {
    p.child.kill('SIGKILL');
    await p.exited;
  }
  expect(heldLocks()).toEqual([]);
  // Closing is asynchronous (the fd goes back through libuv): give it a turn or two.
  for (let i = 0; i < 50 && openFds() > fdsBefore; i += 1) await new Promise((r) => setTimeout(r, 10));
  expect(openFds()).toBeLessThanOrEqual(fdsBefore);
  rmSync(dir, { recursive: true, force: true });
});

const python = (paths: readonly string[], holdS: number): PythonHolder => {
  const p = startPythonHolder(paths, holdS);
  pythons.push(p);
  return p;
};

describe('slot locks shared with the Python library', () => {
  it('use the Python file names, created 0666 whatever the umask, and never deleted', async () => {
    const config = resolveSlotLockOptions({ dir }, 'lock');
    expect(config).toBeDefined();
    if (config === undefined) return;
    expect(slotLockPath(config, 'hci0', 1)).toBe(join(dir, 'bleak-cm-hci0-slot-1.lock'));
    const umask = process.umask(0o077);
    try {
      const a = await acquireSlotLock(config, 'hci0');
      const b = await acquireSlotLock(config, 'hci0');
      // Two acquisitions in one process exclude each other (one open file description each).
      expect([a.held?.slot, b.held?.slot]).toEqual([0, 1]);
      a.held?.release();
      b.held?.release();
      b.held?.release(); // twice is harmless
    } finally {
      process.umask(umask);
    }
    for (const slot of [0, 1]) {
      const path = join(dir, `bleak-cm-hci0-slot-${slot}.lock`);
      expect(statSync(path).mode & 0o777).toBe(0o666);
      expect(readFileSync(path).length).toBe(0);
    }
  });

  it('a Python service holding both slots makes Node wait; SIGKILL of the holder frees its slot at once', async () => {
    const config = resolveSlotLockOptions(
      { dir, maxSlots: 2, timeoutMs: 30_000, retryIntervalMs: 20 },
      'lock',
    );
    if (config === undefined) throw new Error('unreachable');
    const paths = [0, 1].map((s) => slotLockPath(config, 'hci0', s));
    const p0 = python(paths, -1);
    expect(await p0.held).toBe(paths[0]);
    const p1 = python(paths, -1);
    expect(await p1.held).toBe(paths[1]);
    // /proc/locks names the holders.
    const holders = await lockHolders({ dir });
    expect(holders.map((h) => [h.slot, h.holders])).toEqual([
      [0, [p0.child.pid]],
      [1, [p1.child.pid]],
    ]);

    let acquiredAt = 0;
    const waiting = acquireSlotLock(config, 'hci0').then((r) => {
      acquiredAt = performance.now();
      return r;
    });
    await new Promise((r) => setTimeout(r, 200));
    expect(acquiredAt).toBe(0); // both slots busy: still waiting
    p1.child.kill('SIGKILL');
    await p1.exited;
    const diedAt = performance.now();
    const got = await waiting;
    expect(got.held?.slot).toBe(1);
    // No stale file to clean up: the kernel dropped the lock with the process.
    expect(acquiredAt - diedAt).toBeLessThan(100);
    got.held?.release();
  });

  it('a slot held past the timeout degrades to unlocked (or LockTimeoutError when strict) after the timeout and before one more interval', async () => {
    const path = join(dir, 'bleak-cm-hci0-slot-0.lock');
    const p = python([path], -1);
    await p.held;
    const lenient = resolveSlotLockOptions({ dir, maxSlots: 1, timeoutMs: 400, retryIntervalMs: 100 });
    const strict = resolveSlotLockOptions({
      dir,
      maxSlots: 1,
      timeoutMs: 400,
      retryIntervalMs: 100,
      strict: true,
    });
    if (lenient === undefined || strict === undefined) throw new Error('unreachable');
    const outcome = await acquireSlotLock(lenient, 'hci0');
    expect(outcome.degraded).toBe(true);
    if (!outcome.degraded) return;
    expect(outcome.waitedMs).toBeGreaterThanOrEqual(400);
    expect(outcome.waitedMs).toBeLessThan(400 + 100);
    expect(outcome.paths).toEqual([path]);
    const t0 = performance.now();
    const err = await acquireSlotLock(strict, 'hci0').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LockTimeoutError);
    expect((err as LockTimeoutError).code).toBe('LOCK_TIMEOUT');
    expect((err as LockTimeoutError).adapter).toBe('hci0');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(400);
  });

  it('a wait is cancelled at once by its AbortSignal, and nothing stays open', async () => {
    const path = join(dir, 'bleak-cm-hci0-scan.lock');
    const p = python([path], -1);
    await p.held;
    const config = resolveScanLockOptions({ dir, timeoutMs: 60_000 });
    if (config === undefined) throw new Error('unreachable');
    const controller = new AbortController();
    const waiting = acquireScanLock(config, 'hci0', { signal: controller.signal }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    controller.abort();
    expect((await waiting) as Error).toMatchObject({ name: 'AbortError' });
  });

  it('a symlink planted at a slot path is refused with LockPathError and nothing is created or written through it', async () => {
    const config = resolveSlotLockOptions({ dir, maxSlots: 2 });
    if (config === undefined) throw new Error('unreachable');
    const victim = join(dir, 'victim.txt');
    writeFileSync(victim, 'precious', { mode: 0o600 });
    const dangling = join(dir, 'would-be-created');
    symlinkSync(victim, join(dir, 'bleak-cm-hci0-slot-0.lock'));
    symlinkSync(dangling, join(dir, 'bleak-cm-hci1-slot-1.lock'));
    for (const adapter of ['hci0', 'hci1']) {
      const err = await acquireSlotLock(config, adapter).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LockPathError);
      expect((err as LockPathError).code).toBe('LOCK_PATH_REFUSED');
      expect((err as LockPathError).message).toMatch(/symbolic link/);
    }
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(statSync(victim).mode & 0o777).toBe(0o600);
    expect(existsSync(dangling)).toBe(false);
    expect(lstatSync(join(dir, 'bleak-cm-hci0-slot-0.lock')).isSymbolicLink()).toBe(true);
  });

  it('a FIFO or a hard link at a lock path is refused too', async () => {
    const config = resolveScanLockOptions({ dir });
    if (config === undefined) throw new Error('unreachable');
    const { execFileSync } = await import('node:child_process');
    execFileSync('mkfifo', [join(dir, 'bleak-cm-hci0-scan.lock')]);
    await expect(acquireScanLock(config, 'hci0')).rejects.toBeInstanceOf(LockPathError);
    writeFileSync(join(dir, 'other'), '');
    const { linkSync } = await import('node:fs');
    linkSync(join(dir, 'other'), join(dir, 'bleak-cm-hci1-scan.lock'));
    await expect(acquireScanLock(config, 'hci1')).rejects.toThrow(/hard links/);
  });

  it('bad options are a TypeError/RangeError naming the field, before any file is touched', () => {
    expect(() => resolveSlotLockOptions({ template: '../x-{adapter}-{slot}.lock' })).toThrow(/lock.template/);
    expect(() => resolveSlotLockOptions({ template: 'x-{adapter}.lock' })).toThrow(/must contain \{slot\}/);
    expect(() => resolveSlotLockOptions({ template: 'x-{adapter}-{slot}-{pid}.lock' })).toThrow(/\{pid\}/);
    expect(() => resolveSlotLockOptions({ dir: 'relative' })).toThrow(/lock.dir must be an absolute path/);
    expect(() => resolveSlotLockOptions({ maxSlots: 0 })).toThrow(RangeError);
    expect(() => resolveSlotLockOptions({ timeoutMs: -1 })).toThrow(/lock.timeoutMs/);
    expect(() => resolveSlotLockOptions('yes')).toThrow(TypeError);
    expect(() => resolveScanLockOptions({ template: 'sub/{adapter}.lock' }, 'scanLock')).toThrow(
      /scanLock.template/,
    );
    expect(resolveSlotLockOptions(false)).toBeUndefined();
    expect(resolveSlotLockOptions(true)).toMatchObject({
      dir: '/run',
      template: 'bleak-cm-{adapter}-slot-{slot}.lock',
      maxSlots: 2,
      timeoutMs: 15_000,
    });
    expect(resolveScanLockOptions(true)).toMatchObject({
      template: 'bleak-cm-{adapter}-scan.lock',
      timeoutMs: 30_000,
    });
  });
});

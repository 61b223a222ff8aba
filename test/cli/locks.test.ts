/**
 * `bluez-cm locks` and doctor's lock lines as child processes: lock files held by a Python service
 * (fcntl.flock) and by a Node process using the library, read from /proc/locks.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { acquireScanLock, resolveScanLockOptions } from '../../src/lock/index.js';
import { startPythonHolder } from '../lock/python-holder.js';
import { buildCliPackage, type CliPackage } from './harness.js';

describe('bluez-cm locks', () => {
  let pkg: CliPackage;
  let dir: string;
  beforeAll(() => {
    pkg = buildCliPackage();
    dir = mkdtempSync(join(tmpdir(), 'bcm-cli-locks-'));
  });
  afterAll(() => {
    pkg.cleanup();
    rmSync(dir, { recursive: true, force: true });
  });

  it('lists each slot and scan file with the pid and name of its holder; free files as free', async () => {
    const python = startPythonHolder([join(dir, 'bleak-cm-hci0-slot-0.lock')], -1);
    await python.held;
    const freed = startPythonHolder([join(dir, 'bleak-cm-hci0-slot-1.lock')], 0);
    expect(await freed.exited).toBe(0);
    const config = resolveScanLockOptions({ dir });
    if (config === undefined) throw new Error('unreachable');
    const scan = await acquireScanLock(config, 'hci1');
    try {
      const text = pkg.cli(['locks', '--dir', dir]);
      expect(await text.exit).toBe(0);
      const lines = text.out().trim().split('\n');
      expect(lines[0]).toMatch(
        new RegExp(
          `^hci0 slot 0\\s+pid ${python.child.pid} \\(python3[.0-9]*\\)\\s+${dir}/bleak-cm-hci0-slot-0.lock$`,
        ),
      );
      expect(lines[1]).toMatch(/^hci0 slot 1\s+free\s+/);
      expect(lines[2]).toMatch(new RegExp(`^hci1 scan\\s+pid ${process.pid} \\(`));
      const json = pkg.cli(['locks', '--dir', dir, '--json']);
      expect(await json.exit).toBe(0);
      const report = JSON.parse(json.out()) as {
        files: Array<{ kind: string; slot: number | null; holders: Array<{ pid: number }> }>;
      };
      expect(report.files.map((f) => [f.kind, f.slot, f.holders.map((h) => h.pid)])).toEqual([
        ['slot', 0, [python.child.pid]],
        ['slot', 1, []],
        ['scan', null, [process.pid]],
      ]);
    } finally {
      scan.held?.release();
      python.child.kill('SIGKILL');
      await python.exited;
    }
  }, 60_000);

  it('an empty lock directory says so; a relative --dir is a usage error (exit 2)', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'bcm-cli-nolocks-'));
    try {
      const run = pkg.cli(['locks', '--dir', empty]);
      expect(await run.exit).toBe(0);
      expect(run.out()).toMatch(/^no slot or scan lock files in /);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
    const bad = pkg.cli(['locks', '--dir', 'run']);
    expect(await bad.exit).toBe(2);
    expect(bad.err()).toMatch(/--dir must be an absolute path/);
  }, 60_000);
});

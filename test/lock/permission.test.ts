/**
 * A service that may not create lock files in the lock directory (a non-root user and a root-owned
 * /run, here a root-owned 0755 temp dir and a child process run as `nobody` through setpriv):
 * a LockPermissionError naming the path and the fix, not a crash.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { transpileSrc, type TranspiledSrc } from '../testing/helpers/transpile-src.js';

const root = process.getuid?.() === 0 && existsSync('/usr/bin/setpriv');

describe('lock directory without permission', () => {
  let src: TranspiledSrc;
  let dir: string;
  beforeAll(() => {
    src = transpileSrc((p) => p.startsWith('lock/') || p.startsWith('bluez/'));
    chmodSync(dirname(src.dir), 0o755);
    dir = mkdtempSync(join(tmpdir(), 'bcm-locks-rootonly-'));
    chmodSync(dir, 0o755);
  });
  afterAll(() => {
    src.remove();
    rmSync(dir, { recursive: true, force: true });
  });

  it.runIf(root)('a service running as nobody gets LockPermissionError naming the path and the fix', () => {
    const script = `
      const lock = await import(${JSON.stringify(`${src.dir}/lock/index.js`)});
      const config = lock.resolveSlotLockOptions({ dir: ${JSON.stringify(dir)} });
      try { await lock.acquireSlotLock(config, 'hci0'); console.log(JSON.stringify({ ok: true })); }
      catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, path: e.path, message: e.message, advice: e.advice })); }
    `;
    const r = spawnSync(
      '/usr/bin/setpriv',
      [
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        process.execPath,
        '--input-type=module',
        '-e',
        script,
      ],
      { encoding: 'utf8', cwd: '/' },
    );
    expect(r.status, r.stderr).toBe(0);
    const outcome = JSON.parse(r.stdout.trim()) as Record<string, string>;
    expect(outcome).toMatchObject({
      name: 'LockPermissionError',
      code: 'LOCK_PERMISSION_DENIED',
      path: join(dir, 'bleak-cm-hci0-slot-0.lock'),
    });
    expect(outcome.message).toContain(join(dir, 'bleak-cm-hci0-slot-0.lock'));
    expect(outcome.advice).toMatch(/group-writable lock directory/);
  });
});

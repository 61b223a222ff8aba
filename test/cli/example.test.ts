/**
 * examples/establish-connection.mjs as a user runs it: `bluez-cm sim` in one process, the example
 * in another, connected only through DBUS_SYSTEM_BUS_ADDRESS.
 */
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCliPackage, eventually, type CliPackage } from './harness.js';

const examples = fileURLToPath(new URL('../../examples/', import.meta.url));

describe('examples/establish-connection.mjs against bluez-cm sim', () => {
  let pkg: CliPackage;
  beforeAll(() => {
    pkg = buildCliPackage();
    // Inside the temp package, `import 'bluez-connection-manager'` resolves to the transpiled src/.
    mkdirSync(join(pkg.root, 'examples', 'scenarios'), { recursive: true });
    copyFileSync(
      join(examples, 'establish-connection.mjs'),
      join(pkg.root, 'examples', 'establish-connection.mjs'),
    );
  });
  afterAll(() => pkg.cleanup());

  it('connects the thermometer only hci1 hears after an RF abort, reads it, takes three notifications and disconnects', async () => {
    const sim = pkg.cli(['sim', '--scenario', join(examples, 'scenarios', 'two-adapters.json')]);
    try {
      await eventually('sim address', () => /^DBUS_SYSTEM_BUS_ADDRESS=(.+)$/m.test(sim.out()));
      const address = /^DBUS_SYSTEM_BUS_ADDRESS=(.+)$/m.exec(sim.out())?.[1] ?? '';
      const app = pkg.node(join(pkg.root, 'examples', 'establish-connection.mjs'), ['A4:C1:38:00:00:02'], {
        DBUS_SYSTEM_BUS_ADDRESS: address,
      });
      const code = await app.exit;
      expect(app.err()).toBe('');
      expect(code).toBe(0);
      const out = app.out();
      expect(out).toContain('connected to A4:C1:38:00:00:02 on hci1');
      expect(out).toMatch(/attempt 1 on hci1: failed \(aborted: .*le-connection-abort-by-local/);
      expect(out).toMatch(/attempt 2 on hci1: connected \(ok\)/);
      expect(out).toContain('temperature: 23.12 °C (raw 0809)');
      expect(out).toContain('notification 3:');
      expect(out).toMatch(/disconnected\n$/);
    } finally {
      sim.child.kill('SIGINT');
      expect(await sim.exit).toBe(0);
    }
  }, 60_000);
});

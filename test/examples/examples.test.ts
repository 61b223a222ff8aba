/**
 * Every file in examples/ as a user runs it: `bluez-cm sim` in one process, the example in
 * another, connected only through DBUS_SYSTEM_BUS_ADDRESS (the simulator-testing example starts
 * its own). TypeScript examples are transpiled the way a user's build would, then run with node.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCliPackage, eventually, type CliPackage, type CliRun } from '../cli/harness.js';

const examples = fileURLToPath(new URL('../../examples/', import.meta.url));
const scenario = join(examples, 'scenarios', 'two-adapters.json');

describe('examples/ against the simulator', () => {
  let pkg: CliPackage;
  let dir: string;
  beforeAll(() => {
    pkg = buildCliPackage();
    // Inside the temp package, `import 'bluez-connection-manager'` resolves to the transpiled src/.
    dir = join(pkg.root, 'examples');
    mkdirSync(dir, { recursive: true });
    for (const file of readdirSync(examples)) {
      if (file.endsWith('.mjs')) copyFileSync(join(examples, file), join(dir, file));
      if (file.endsWith('.ts')) {
        const js = ts.transpileModule(readFileSync(join(examples, file), 'utf8'), {
          compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
          fileName: file,
        }).outputText;
        writeFileSync(join(dir, file.replace(/\.ts$/, '.mjs')), js);
      }
    }
  });
  afterAll(() => pkg.cleanup());

  /** Runs `example` against a fresh `bluez-cm sim` of the two-adapter scenario. */
  async function againstSim(example: string, args: readonly string[] = []): Promise<CliRun> {
    const sim = pkg.cli(['sim', '--scenario', scenario]);
    try {
      await eventually('sim address', () => /^DBUS_SYSTEM_BUS_ADDRESS=(.+)$/m.test(sim.out()));
      const address = /^DBUS_SYSTEM_BUS_ADDRESS=(.+)$/m.exec(sim.out())?.[1] ?? '';
      const app = pkg.node(join(dir, example), args, { DBUS_SYSTEM_BUS_ADDRESS: address });
      await app.exit;
      return app;
    } finally {
      sim.child.kill('SIGINT');
      expect(await sim.exit).toBe(0);
    }
  }

  it('establish-connection.mjs connects the thermometer only hci1 hears after an RF abort, reads it, takes three notifications and disconnects', async () => {
    const app = await againstSim('establish-connection.mjs', ['A4:C1:38:00:00:02']);
    expect(app.err()).toBe('');
    expect(await app.exit).toBe(0);
    const out = app.out();
    expect(out).toContain('connected to A4:C1:38:00:00:02 on hci1');
    expect(out).toMatch(/attempt 1 on hci1: failed \(aborted: .*le-connection-abort-by-local/);
    expect(out).toMatch(/attempt 2 on hci1: connected \(ok\)/);
    expect(out).toContain('temperature: 23.12 °C (raw 0809)');
    expect(out).toContain('notification 3:');
    expect(out).toMatch(/disconnected\n$/);
  }, 60_000);

  it('pool.ts connects three devices across both adapters and disconnects them', async () => {
    const app = await againstSim('pool.mjs');
    expect(app.err()).toBe('');
    expect(await app.exit).toBe(0);
    const out = app.out();
    expect(out).toMatch(/C8:47:8C:00:00:01 connected on hci[01]/);
    // The thermometer is heard by hci1 only: the pool never puts it on hci0.
    expect(out).toContain('A4:C1:38:00:00:02 connected on hci1');
    expect(out).toMatch(/F0:F5:BD:00:00:03 connected on hci[01]/);
    expect(out).toMatch(/hci0: \d\/5 slots in use/);
    expect(out).toContain('all disconnected');
  }, 60_000);

  it('test-with-simulator.ts passes as a node:test file (its own simulator, a phantom cleared)', async () => {
    const run = pkg.node(join(dir, 'test-with-simulator.mjs'), []);
    const code = await run.exit;
    expect(`${run.out()}${run.err()}`).toMatch(/# pass 1/);
    expect(code).toBe(0);
  }, 60_000);
});

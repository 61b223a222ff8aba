/**
 * Every file in examples/ as a user runs it: `bluez-cm sim` in one process, the example in
 * another, connected only through DBUS_SYSTEM_BUS_ADDRESS (the simulator-testing example starts
 * its own). TypeScript examples are transpiled the way a user's build would, then run with node.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { WebSocketServer } from 'ws';
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
  async function againstSim(
    example: string,
    args: readonly string[] = [],
    env: NodeJS.ProcessEnv = {},
    scenarioFile = scenario,
  ): Promise<CliRun> {
    const sim = pkg.cli(['sim', '--scenario', scenarioFile]);
    try {
      await eventually('sim address', () => /^DBUS_SYSTEM_BUS_ADDRESS=(.+)$/m.test(sim.out()));
      const address = /^DBUS_SYSTEM_BUS_ADDRESS=(.+)$/m.exec(sim.out())?.[1] ?? '';
      const app = pkg.node(join(dir, example), args, { ...env, DBUS_SYSTEM_BUS_ADDRESS: address });
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

  it('inspector.ts sends the pool and every connection actor to the Stately inspector, each named with its parent', async () => {
    // What the Stately inspector's bridge would receive, on a WebSocket server of our own.
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    const received: Array<Record<string, unknown>> = [];
    server.on('connection', (socket) =>
      socket.on('message', (data: Buffer) =>
        received.push(JSON.parse(data.toString('utf8')) as Record<string, unknown>),
      ),
    );
    await new Promise<void>((resolve) => server.once('listening', () => resolve()));
    const port = (server.address() as { port: number }).port;
    try {
      const app = await againstSim('inspector.mjs', [], {
        INSPECT_WS_URL: `ws://127.0.0.1:${port}`,
        INSPECT_LINGER_MS: '0',
      });
      expect(app.err()).toBe('');
      expect(await app.exit).toBe(0);
      expect(app.out()).toContain('A4:C1:38:00:00:02 connected on hci1');
      await eventually('the last inspection events', () =>
        received.some((e) => e['type'] === '@xstate.snapshot'),
      );
      const actors = received.filter((e) => e['type'] === '@xstate.actor');
      const bySession = new Map(actors.map((a) => [String(a['sessionId']), a]));
      const roots = actors.filter((a) => a['parentId'] === undefined);
      expect(roots).toHaveLength(1); // the pool
      const pool = String(roots[0]?.['sessionId']);
      // Every other actor names a parent that was itself announced: one tree under the pool.
      for (const actor of actors.filter((a) => a['parentId'] !== undefined)) {
        expect(bySession.has(String(actor['parentId']))).toBe(true);
      }
      // Each device's connection actor is a child of the pool, with its address in its context.
      const devicesUnderPool = actors
        .filter((a) => a['parentId'] === pool)
        .map((a) => (a['snapshot'] as { context?: { address?: string } } | undefined)?.context?.address);
      expect(devicesUnderPool).toEqual(expect.arrayContaining(['C8:47:8C:00:00:01', 'A4:C1:38:00:00:02']));
      // And the actors a connection invokes (connect, validate, …) hang below it.
      const connectionSessions = new Set(
        actors.filter((a) => a['parentId'] === pool).map((a) => String(a['sessionId'])),
      );
      expect(actors.some((a) => connectionSessions.has(String(a['parentId'])))).toBe(true);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 60_000);

  it('keep-alive.mjs: the battery monitor’s link drops and keep-alive brings it back; closed says disconnected', async () => {
    const app = await againstSim('keep-alive.mjs', [], {}, join(examples, 'scenarios', 'link-drop.json'));
    expect(app.err()).toBe('');
    expect(await app.exit).toBe(0);
    const out = app.out();
    expect(out).toMatch(/connected to C8:47:8C:00:00:01 on hci[01]/);
    expect(out).toMatch(/link lost on hci[01] \(Connected=false\); keep-alive reconnects/);
    expect(out).toMatch(/reconnected on hci[01]/);
    expect(out).toMatch(/closed: disconnected\n$/);
  }, 60_000);

  it('test-with-simulator.ts passes as a node:test file (its own simulator, a phantom cleared)', async () => {
    const run = pkg.node(join(dir, 'test-with-simulator.mjs'), []);
    const code = await run.exit;
    expect(`${run.out()}${run.err()}`).toMatch(/# pass 1/);
    expect(code).toBe(0);
  }, 60_000);
});

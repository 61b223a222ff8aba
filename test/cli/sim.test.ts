import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../testing/fixtures.js';
import { RawClient } from '../testing/helpers/raw-client.js';
import { transpileSrc } from '../testing/helpers/transpile-src.js';
import type { TranspiledSrc } from '../testing/helpers/transpile-src.js';

const example = fileURLToPath(new URL('../../examples/scenarios/two-adapters.json', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface Run {
  child: ChildProcessWithoutNullStreams;
  out: () => string;
  err: () => string;
  exit: Promise<number | null>;
}

describe('bluez-cm sim and the dispatcher', () => {
  let src: TranspiledSrc;
  let tmp: string;
  const running: Run[] = [];

  function cli(...args: string[]): Run {
    const child = spawn(process.execPath, [join(src.dir, 'cli', 'main.js'), ...args], { stdio: 'pipe' });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const run = { child, out: () => out, err: () => err, exit };
    running.push(run);
    return run;
  }

  beforeAll(() => {
    src = transpileSrc();
    tmp = mkdtempSync(join(tmpdir(), 'bluez-cm-cli-test-'));
  });
  afterAll(() => {
    for (const r of running) if (r.child.exitCode === null) r.child.kill('SIGKILL');
    src.remove();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('sim serves the example scenario until SIGTERM, prints DBUS_SYSTEM_BUS_ADDRESS, and leaves nothing behind', async () => {
    const run = cli('sim', '--scenario', example);
    await eventually('address line', () => /^DBUS_SYSTEM_BUS_ADDRESS=(.+)$/m.test(run.out()), 15_000);
    const address = /^DBUS_SYSTEM_BUS_ADDRESS=(.+)$/m.exec(run.out())?.[1] ?? '';
    const pid = Number(/dbus-daemon pid (\d+)/.exec(run.out())?.[1]);
    expect(address).toMatch(/^unix:path=/);
    const client = await RawClient.connect(address);
    try {
      const paths = await client.managedPaths();
      expect(paths).toContain('/org/bluez/hci0');
      expect(paths).toContain('/org/bluez/hci1');
      expect(paths).toContain('/org/bluez/hci0/dev_F0_F5_BD_00_00_03'); // knownOn hci0
    } finally {
      client.close();
    }
    run.child.kill('SIGTERM');
    expect(await run.exit).toBe(0);
    expect(alive(pid)).toBe(false);
    expect(existsSync(address.replace('unix:path=', ''))).toBe(false);
  });

  it('sim rejects a scenario with a bad field, naming the file and the field', async () => {
    const file = join(tmp, 'bad.json');
    writeFileSync(
      file,
      JSON.stringify({ adapters: [{ name: 'hci0' }], devices: [{ address: 'not-a-mac' }] }),
    );
    const run = cli('sim', '--scenario', file);
    expect(await run.exit).toBe(2);
    expect(run.err()).toContain(file);
    expect(run.err()).toContain('scenario.devices[0].address must be a MAC address');
  });

  it('sim rejects a file that is not JSON', async () => {
    const file = join(tmp, 'broken.json');
    writeFileSync(file, '{ "adapters": [');
    const run = cli('sim', '--scenario', file);
    expect(await run.exit).toBe(2);
    expect(run.err()).toMatch(/is not valid JSON/);
  });

  it('--help lists every command', async () => {
    const run = cli('--help');
    expect(await run.exit).toBe(0);
    for (const command of ['demo', 'connect', 'doctor', 'locks', 'diagram', 'sim']) {
      expect(run.out()).toMatch(new RegExp(`^  ${command}\\s+\\S`, 'm'));
    }
  });

  it('options without a command go to the demo, the default job', async () => {
    const run = cli('--latency-scale', '7');
    expect(await run.exit).toBe(2);
    expect(run.err()).toContain('bluez-cm demo: --latency-scale must be a number >= 0.01 and <= 1 (got "7")');
  });

  it('an unknown command prints the usage and exits 2', async () => {
    const run = cli('frobnicate');
    expect(await run.exit).toBe(2);
    expect(run.err()).toContain('unknown command "frobnicate"');
    expect(run.err()).toContain('sim');
  });
});

/**
 * openBluez on a bus socket that cannot be opened: the cause (errno and path) at once, not a
 * BusLostError after openTimeoutMs of reconnect backoff.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openBluez } from '../../src/bluez/client.js';
import { endpointOf } from '../../src/bluez/bus-probe.js';
import { BusUnreachableError } from '../../src/bluez/errors.js';
import { startSimulatedBluez, type SimulatedBluez } from '../../src/testing/index.js';

const dirs: string[] = [];
let env: SimulatedBluez | undefined;
afterEach(async () => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  await env?.stop();
  env = undefined;
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'bzcm-probe-'));
  dirs.push(dir);
  return dir;
}

/** Opens with a long openTimeoutMs: the old path waited all of it before failing. */
async function openFails(busAddress: string): Promise<{ error: unknown; elapsedMs: number }> {
  const t0 = performance.now();
  try {
    const client = await openBluez({ busAddress, openTimeoutMs: 20_000 });
    await client.close();
    return { error: undefined, elapsedMs: performance.now() - t0 };
  } catch (error) {
    return { error, elapsedMs: performance.now() - t0 };
  }
}

describe('openBluez on a socket that cannot be opened', () => {
  it('a missing socket file rejects at once with ENOENT, the path and advice', async () => {
    const path = join(tempDir(), 'no-such-bus');
    const { error, elapsedMs } = await openFails(`unix:path=${path}`);
    expect(error).toBeInstanceOf(BusUnreachableError);
    const e = error as BusUnreachableError;
    expect(e.code).toBe('BUS_UNREACHABLE');
    expect(e.errno).toBe('ENOENT');
    expect(e.message).toContain('ENOENT');
    expect(e.message).toContain(path);
    expect(e.advice).toMatch(/DBUS_SYSTEM_BUS_ADDRESS/);
    // No reconnect backoff was waited: far below the 20 s openTimeoutMs the old path used up.
    expect(elapsedMs).toBeLessThan(5_000);
  });

  it('a stale socket file nobody listens on rejects at once with ECONNREFUSED', async () => {
    const path = join(tempDir(), 'stale-bus');
    // A socket bound by a process that exited: the file stays, nobody accepts.
    const bound = spawnSync('/usr/bin/python3', [
      '-c',
      'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])',
      path,
    ]);
    expect(bound.status).toBe(0);
    expect(existsSync(path)).toBe(true);
    const { error } = await openFails(`unix:path=${path}`);
    expect(error).toBeInstanceOf(BusUnreachableError);
    expect((error as BusUnreachableError).errno).toBe('ECONNREFUSED');
    expect((error as Error).message).toContain(path);
  });

  it('a closed TCP port rejects at once with ECONNREFUSED and host:port', async () => {
    // Port 1 on loopback: nothing listens there on a test machine.
    const { error } = await openFails('tcp:host=127.0.0.1,port=1');
    expect(error).toBeInstanceOf(BusUnreachableError);
    expect((error as Error).message).toContain('127.0.0.1:1');
  });

  it('a live bus still opens (the look does not get in the way)', async () => {
    env = await startSimulatedBluez({ scenario: { adapters: [{ name: 'hci0' }], devices: [] } });
    const client = await openBluez({ busAddress: env.address });
    expect(client.adapters().map((a) => a.name)).toEqual(['hci0']);
    await client.close();
  });

  it('reads the transports a BlueZ client meets', () => {
    expect(endpointOf('unix:path=/run/dbus/system_bus_socket')).toEqual({
      kind: 'unix',
      path: '/run/dbus/system_bus_socket',
      abstract: false,
    });
    expect(endpointOf('unix:path=/tmp/a%20b,guid=1;tcp:host=x,port=2')).toEqual({
      kind: 'unix',
      path: '/tmp/a b',
      abstract: false,
    });
    expect(endpointOf('tcp:host=10.0.0.2,port=55556')).toEqual({
      kind: 'tcp',
      host: '10.0.0.2',
      port: 55556,
    });
    expect(endpointOf('launchd:env=X')).toBeUndefined();
  });
});

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import dbus from 'dbus-next';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DbusDaemonNotFoundError, findDbusDaemon, startPrivateBus } from '../../src/testing/private-bus.js';
import { transpileSrc } from './helpers/transpile-src.js';
import type { TranspiledSrc } from './helpers/transpile-src.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(what: string, check: () => boolean, deadlineMs = 8000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function withClient<T>(address: string, fn: (bus: dbus.MessageBus) => Promise<T>): Promise<T> {
  const bus = dbus.sessionBus({ busAddress: address });
  bus.on('error', () => undefined);
  try {
    return await fn(bus);
  } finally {
    bus.disconnect();
  }
}

async function callDaemon(
  bus: dbus.MessageBus,
  iface: string,
  member: string,
  signature = '',
  body: unknown[] = [],
) {
  const reply = await bus.call(
    new dbus.Message({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: iface,
      member,
      signature,
      body,
    }),
  );
  return reply?.body ?? [];
}

describe('private dbus-daemon', () => {
  it('serves a system-type bus where anyone may own org.bluez and Debug.Stats answers', async () => {
    const bus = await startPrivateBus();
    try {
      expect(bus.address).toBe(`unix:path=${bus.socketPath}`);
      expect(alive(bus.pid)).toBe(true);
      await withClient(bus.address, async (client) => {
        const [owned] = await callDaemon(client, 'org.freedesktop.DBus', 'RequestName', 'su', [
          'org.bluez',
          4,
        ]);
        expect(owned).toBe(1); // DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER
        const [stats] = await callDaemon(client, 'org.freedesktop.DBus.Debug.Stats', 'GetStats');
        expect(stats).toHaveProperty('ActiveConnections');
        const [rules] = await callDaemon(client, 'org.freedesktop.DBus.Debug.Stats', 'GetAllMatchRules');
        expect(typeof rules).toBe('object');
        const [conn] = await callDaemon(
          client,
          'org.freedesktop.DBus.Debug.Stats',
          'GetConnectionStats',
          's',
          [(client as unknown as { name: string }).name],
        );
        expect(conn).toHaveProperty('MatchRules');
      });
    } finally {
      await bus.stop();
    }
  });

  it('stop leaves no daemon and no socket behind, and is idempotent', async () => {
    const bus = await startPrivateBus();
    const { pid, socketPath } = bus;
    await bus.stop();
    await bus.stop();
    expect(alive(pid)).toBe(false);
    expect(existsSync(socketPath)).toBe(false);
  });

  it('kill drops the bus like a crash, and restart brings a new daemon at the same address', async () => {
    const bus = await startPrivateBus();
    try {
      const first = bus.pid;
      const address = bus.address;
      await bus.kill();
      expect(alive(first)).toBe(false);
      expect(existsSync(bus.socketPath)).toBe(false);
      await bus.restart();
      expect(bus.address).toBe(address);
      expect(bus.pid).not.toBe(first);
      const names = await withClient(bus.address, (c) => callDaemon(c, 'org.freedesktop.DBus', 'ListNames'));
      expect(names[0]).toContain('org.freedesktop.DBus');
      // restart while running also works
      const second = bus.pid;
      await bus.restart();
      expect(alive(second)).toBe(false);
      expect(alive(bus.pid)).toBe(true);
    } finally {
      await bus.stop();
    }
  });

  describe('when the owning process is SIGKILLed', () => {
    let src: TranspiledSrc;
    beforeAll(() => {
      src = transpileSrc((p) => p === join('testing', 'private-bus.ts'));
    });
    afterAll(() => src.remove());

    it('the daemon dies with it and its directory is removed', async () => {
      const script = `
        const { startPrivateBus } = await import(${JSON.stringify(join(src.dir, 'testing', 'private-bus.js'))});
        const bus = await startPrivateBus();
        process.stdout.write(JSON.stringify({ pid: bus.pid, socketPath: bus.socketPath }) + '\\n');
        setInterval(() => {}, 1000);
      `;
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const info = await new Promise<{ pid: number; socketPath: string }>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('\n')) resolve(JSON.parse(out) as { pid: number; socketPath: string });
        });
        child.once('exit', (code) => reject(new Error(`child exited ${code}: ${stderr}`)));
      });
      expect(alive(info.pid)).toBe(true);
      expect(existsSync(info.socketPath)).toBe(true);
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
      await until('daemon gone', () => !alive(info.pid));
      await until('socket removed', () => !existsSync(info.socketPath));
    });
  });

  describe('without dbus-daemon', () => {
    it('names the Debian package when the binary option points at nothing', async () => {
      const err = await startPrivateBus({ dbusDaemon: '/nonexistent/dbus-daemon' }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(DbusDaemonNotFoundError);
      expect((err as DbusDaemonNotFoundError).code).toBe('DBUS_DAEMON_NOT_FOUND');
      expect((err as Error).message).toMatch(/package "dbus"/);
      expect((err as Error).message).toContain('/nonexistent/dbus-daemon');
    });

    it('names the Debian package when PATH has no dbus-daemon', () => {
      expect(() => findDbusDaemon('dbus-daemon', '/nonexistent:/also-not')).toThrow(/apt-get install dbus/);
    });
  });

  it('rejects a bad option before starting anything', async () => {
    await expect(startPrivateBus({ startTimeoutMs: -1 })).rejects.toThrow(RangeError);
  });
});

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startPrivateBus, type PrivateBus } from '../../src/testing/index.js';
import { acquireBus, type SharedBus } from '../../src/bluez/bus.js';
import {
  BusLostError,
  DBusCallError,
  DBusTimeoutError,
  InProgressError,
  classifyError,
} from '../../src/bluez/errors.js';
import { daemonStats, startTestService, type TestService } from './helpers.js';

let daemon: PrivateBus;
let service: TestService;
let bus: SharedBus;

beforeEach(async () => {
  daemon = await startPrivateBus();
  service = await startTestService(daemon.address);
  bus = acquireBus(daemon.address);
  await bus.ready({ timeoutMs: 10_000 });
});

afterEach(async () => {
  await bus.release();
  service.close();
  await daemon.stop();
});

const hang = {
  destination: 'org.example.Test',
  path: '/org/example',
  interface: 'org.example.Test',
  member: 'Hang',
};
const echo = (s: string) => ({ ...hang, member: 'Echo', signature: 's', body: [s] });

function waitEvent(b: SharedBus, event: 'connected' | 'lost', timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${timeoutMs} ms`)), timeoutMs);
    const off = b.on(event, () => {
      clearTimeout(timer);
      off();
      resolve();
    });
  });
}

describe('shared bus: every call settles', () => {
  it('a method that never replies rejects with DBusTimeoutError naming member and path at its deadline', async () => {
    const started = performance.now();
    const err = await bus.call(hang, { timeoutMs: 300 }).catch((e: unknown) => e);
    const elapsed = performance.now() - started;
    expect(err).toBeInstanceOf(DBusTimeoutError);
    const t = err as DBusTimeoutError;
    expect(t.code).toBe('DBUS_TIMEOUT');
    expect(t.member).toBe('org.example.Test.Hang');
    expect(t.path).toBe('/org/example');
    expect(t.message).toContain('org.example.Test.Hang');
    expect(t.message).toContain('/org/example');
    expect(classifyError(t).class).toBe('noReply');
    expect(elapsed).toBeGreaterThanOrEqual(290); // not before its deadline
    expect(bus.pendingCount).toBe(0);
    expect(service.received).toContain('Hang');
  });

  it('an AbortSignal cancels a pending call with its reason and leaves nothing pending', async () => {
    const controller = new AbortController();
    const pending = bus.call(hang, { timeoutMs: 60_000, signal: controller.signal });
    expect(bus.pendingCount).toBe(1);
    const reason = new Error('user cancelled');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    expect(bus.pendingCount).toBe(0);
    // dbus-next's own reply handler for the abandoned serial is gone too.
    const handlers = (bus.messageBus() as unknown as { _methodReturnHandlers: Record<number, unknown> })
      ._methodReturnHandlers;
    expect(Object.keys(handlers)).toHaveLength(0);
  });

  it('an already aborted signal rejects before anything is sent', async () => {
    const before = service.received.length;
    await expect(bus.call(hang, { timeoutMs: 1000, signal: AbortSignal.abort() })).rejects.toMatchObject({
      name: 'AbortError',
    });
    expect(service.received.length).toBe(before);
  });

  it('bad deadlines are refused with a RangeError naming the field before any I/O', () => {
    expect(() => bus.call(hang, { timeoutMs: -1 })).toThrow(/timeoutMs/);
    expect(() => bus.call(hang, { timeoutMs: Number.NaN })).toThrow(RangeError);
  });

  it('a reply resolves with its body; a D-Bus error becomes a typed error with its name', async () => {
    await expect(bus.call(echo('hello'), { timeoutMs: 5000 })).resolves.toEqual(['hello']);
    const inProgress = await bus
      .call(
        {
          ...hang,
          member: 'Fail',
          signature: 'ss',
          body: ['org.bluez.Error.InProgress', 'Operation already in progress'],
        },
        { timeoutMs: 5000, adapter: 'hci1', device: 'AA:BB:CC:DD:EE:FF' },
      )
      .catch((e: unknown) => e);
    expect(inProgress).toBeInstanceOf(InProgressError);
    expect(inProgress).toMatchObject({
      code: 'IN_PROGRESS',
      dbusName: 'org.bluez.Error.InProgress',
      adapter: 'hci1',
      device: 'AA:BB:CC:DD:EE:FF',
    });
    const other = await bus
      .call(
        { ...hang, member: 'Fail', signature: 'ss', body: ['com.example.Weird', 'odd'] },
        { timeoutMs: 5000 },
      )
      .catch((e: unknown) => e);
    expect(other).toBeInstanceOf(DBusCallError);
    expect((other as DBusCallError).dbusName).toBe('com.example.Weird');
  });

  it('killing the dbus-daemon rejects every pending call with BusLostError, and the bus comes back at the same address', async () => {
    const lost = waitEvent(bus, 'lost');
    const calls = [1, 2, 3, 4, 5].map(() => bus.call(hang, { timeoutMs: 60_000 }).catch((e: unknown) => e));
    await daemon.kill();
    await lost;
    const results = await Promise.all(calls);
    for (const r of results) {
      expect(r).toBeInstanceOf(BusLostError);
      expect(classifyError(r).class).toBe('bluezGone');
    }
    expect(bus.pendingCount).toBe(0);
    // While the daemon is gone a new call fails at once instead of hanging.
    await expect(bus.call(hang, { timeoutMs: 60_000 })).rejects.toBeInstanceOf(BusLostError);

    const back = waitEvent(bus, 'connected');
    await daemon.restart();
    await back;
    expect(bus.state).toBe('connected');
    const svc2 = await startTestService(daemon.address);
    try {
      await expect(bus.call(echo('again'), { timeoutMs: 5000 })).resolves.toEqual(['again']);
    } finally {
      svc2.close();
    }
  });
});

describe('shared bus: errors that are not a lost connection', () => {
  it("a proxy's failed AddMatch re-emitted as 'error' (dbus-next does that) does not tear down the connection", async () => {
    const raw = bus.messageBus() as unknown as {
      _addMatch(rule: string): Promise<unknown>;
      emit(event: string, err: unknown): boolean;
    };
    const failure = await raw._addMatch("type='nonsense'").catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(Error);
    raw.emit('error', failure); // exactly what dbus-next's ProxyInterface does on a failed AddMatch
    expect(bus.state).toBe('connected');
    await expect(bus.call(echo('still here'), { timeoutMs: 5000 })).resolves.toEqual(['still here']);
  });

  it('an unreachable address rejects openBluez before its deadline with the socket error as cause', async () => {
    const { openBluez, BusUnreachableError } = await import('../../src/bluez/index.js');
    const err = await openBluez({ busAddress: 'unix:path=/nonexistent/bus', openTimeoutMs: 20_000 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BusUnreachableError);
    expect(String((err as Error).cause)).toMatch(/ENOENT/);
    await expect(openBluez({ busAddress: 'not an address' })).rejects.toThrow(/busAddress/);
  });
});

describe('shared bus: nothing grows with the peers it has talked to', () => {
  it('calls to the unique names of 30 services that came and went (a bluetoothd restarted 30 times) leave no trace in the connection: dbus-next remembers every unique destination that answered, and the bus forgets them (found by the soak)', async () => {
    const owners = (): string[] =>
      Object.keys((bus.messageBus() as unknown as { _nameOwners: Record<string, string> })._nameOwners);
    // Each of the 30 services below owns org.example.Test in its turn.
    service.close();
    const before = owners().filter((n) => n.startsWith(':'));
    for (let i = 0; i < 30; i += 1) {
      const peer = await startTestService(daemon.address);
      const unique = await bus.call(
        {
          destination: 'org.freedesktop.DBus',
          path: '/org/freedesktop/DBus',
          interface: 'org.freedesktop.DBus',
          member: 'GetNameOwner',
          signature: 's',
          body: ['org.example.Test'],
        },
        { timeoutMs: 5000 },
      );
      // As the mirror does: GetManagedObjects-style calls go to bluetoothd's unique name.
      const to = { ...echo('x'), destination: String(unique[0]) };
      await expect(bus.call(to, { timeoutMs: 5000 })).resolves.toEqual(['x']);
      await expect(
        bus.call(
          { ...to, member: 'Fail', signature: 'ss', body: ['org.example.Error.X', 'no'] },
          { timeoutMs: 5000 },
        ),
      ).rejects.toBeInstanceOf(DBusCallError);
      peer.close();
    }
    expect(owners().filter((n) => n.startsWith(':'))).toEqual(before);
  });
});

describe('shared bus: match rules and connections are released', () => {
  it('match rules are refcounted, re-added after a reconnect and removed with RemoveMatch', async () => {
    const rule = "type='signal',interface='org.example.Test'";
    await bus.addMatch(rule, { timeoutMs: 5000 });
    await bus.addMatch(rule, { timeoutMs: 5000 });
    const me = bus.uniqueName ?? '';
    expect((await daemonStats(daemon.address)).rulesByConnection.get(me)).toEqual([rule]);

    await bus.removeMatch(rule, { timeoutMs: 5000 });
    expect((await daemonStats(daemon.address)).rulesByConnection.get(me)).toEqual([rule]);

    const back = waitEvent(bus, 'connected');
    await daemon.restart();
    await back;
    const me2 = bus.uniqueName ?? '';
    expect((await daemonStats(daemon.address)).rulesByConnection.get(me2)).toEqual([rule]);

    await bus.removeMatch(rule, { timeoutMs: 5000 });
    expect((await daemonStats(daemon.address)).rulesByConnection.get(me2) ?? []).toEqual([]);
    expect(bus.matchRules.size).toBe(0);
  });

  it('after the last release the daemon holds no connection and no match rule of ours', async () => {
    const extra = acquireBus(daemon.address);
    expect(extra).toBe(bus); // one connection per address
    await extra.addMatch("type='signal',interface='org.example.Test'", { timeoutMs: 5000 });
    const me = bus.uniqueName ?? '';
    await extra.release();
    expect((await daemonStats(daemon.address)).names).toContain(me);

    await bus.release();
    const stats = await daemonStats(daemon.address);
    expect(stats.names).not.toContain(me);
    expect(stats.rulesByConnection.has(me)).toBe(false);
    // Only the test service remains connected.
    expect(stats.activeConnections).toBe(1);
    expect(bus.state).toBe('closed');
    await expect(bus.call(echo('x'), { timeoutMs: 1000 })).rejects.toBeInstanceOf(BusLostError);
    bus = acquireBus(daemon.address); // for afterEach
  });
});

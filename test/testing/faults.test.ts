import { afterEach, describe, expect, it } from 'vitest';
import { startSimulatedBluez } from '../../src/testing/index.js';
import type { FaultSpec, Scenario, SimulatedBluez, SimulatedBluezOptions } from '../../src/testing/index.js';
import { NUS_TX, bms, eventually } from './fixtures.js';
import { DEV, NoReplyWithin, RawClient } from './helpers/raw-client.js';

const M1 = 'AA:BB:CC:DD:EE:01';
const M2 = 'AA:BB:CC:DD:EE:02';
const D1 = 'org.bluez.Device1';
const A1 = 'org.bluez.Adapter1';
const ABORT = { ok: false, errorName: 'org.bluez.Error.Failed', text: 'le-connection-abort-by-local' };

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(scenario?: Partial<Scenario>, opts: Omit<SimulatedBluezOptions, 'scenario'> = {}) {
  const full: Scenario = {
    adapters: [{ name: 'hci0' }, { name: 'hci1' }],
    devices: [bms(M1, { knownOn: ['hci0', 'hci1'] }), bms(M2, { knownOn: ['hci0', 'hci1'] })],
    ...scenario,
  };
  const env: SimulatedBluez = await startSimulatedBluez({ latencyScale: 0.01, ...opts, scenario: full });
  cleanups.push(() => env.stop());
  const client = await RawClient.connect(env.address);
  cleanups.push(() => client.close());
  return { env, sim: env.sim, client };
}

function dev(env: SimulatedBluez, mac = M1, adapter = 'hci0') {
  return env.sim
    .state()
    .adapters.find((a) => a.name === adapter)
    ?.devices.find((d) => d.address === mac);
}

const connect = (client: RawClient, mac = M1, adapter = 'hci0', timeoutMs = 5000) =>
  client.call(DEV(adapter, mac), D1, 'Connect', '', [], { timeoutMs });

async function connected(env: SimulatedBluez, client: RawClient, mac = M1, adapter = 'hci0') {
  expect((await connect(client, mac, adapter)).ok).toBe(true);
  await eventually('services resolved', () => dev(env, mac, adapter)?.servicesResolved === true);
}

/** Resolves to 'pending' if the promise has not settled once `ms` of simulator time has passed. */
async function stillPending<T>(p: Promise<T>, ms: number): Promise<'pending' | T> {
  return Promise.race([p, new Promise<'pending'>((r) => setTimeout(() => r('pending'), ms))]);
}

describe('faults, each with the error real BlueZ produces', () => {
  it('connect-latency: the faulted device is still connecting when an unfaulted one is done', async () => {
    const { env, sim, client } = await start();
    sim.inject({ kind: 'connect-latency', target: { device: M1 }, ms: 400 });
    const slow = connect(client, M1);
    expect((await connect(client, M2)).ok).toBe(true);
    expect(dev(env, M1)?.connecting).toBe(true);
    expect((await slow).ok).toBe(true);
  });

  it('fail-connect: the next N connects fail with the given name and text, then connects work', async () => {
    const { sim, client } = await start();
    const fault: FaultSpec = {
      kind: 'fail-connect',
      target: { device: M1, adapter: 'hci0' },
      count: 2,
      errorName: 'org.bluez.Error.Failed',
      message: 'le-connection-abort-by-remote',
    };
    sim.inject(fault);
    const expected = {
      ok: false,
      errorName: 'org.bluez.Error.Failed',
      text: 'le-connection-abort-by-remote',
    };
    expect(await connect(client)).toMatchObject(expected);
    expect((await connect(client, M1, 'hci1')).ok).toBe(true); // other adapter unaffected
    expect(await connect(client)).toMatchObject(expected);
    expect((await connect(client)).ok).toBe(true);
    expect(sim.state().faults).toEqual([]);
  });

  it('link-drop: a connected link drops (Connected=false); injected before connecting it drops after resolution', async () => {
    const { env, sim, client } = await start();
    await connected(env, client);
    sim.inject({ kind: 'link-drop', target: { device: M1 } });
    await eventually('link down', () => dev(env)?.connected === false);
    // The GATT objects stay: Cache=always, bluetoothd's default and the simulator's.
    expect(dev(env)).toMatchObject({ servicesResolved: false });
    expect(dev(env)?.gattServices).toHaveLength(2);

    sim.inject({ kind: 'link-drop', target: { device: M2 }, afterMs: 20 });
    expect((await connect(client, M2)).ok).toBe(true);
    await eventually(
      'resolved then dropped',
      () =>
        client.lines().includes('signal Device1 ServicesResolved=true') && dev(env, M2)?.connected === false,
    );
    expect(sim.state().faults).toEqual([]);
  });

  it('disappear: the link drops, discovery does not see it, Connect fails after the LE timeout; it comes back after forMs', async () => {
    const { env, sim, client } = await start(
      { adapters: [{ name: 'hci0' }], devices: [bms(M1, { knownOn: ['hci0'] }), bms(M2)] },
      { timing: { connectTimeoutMs: 100 } },
    );
    await connected(env, client);
    const handle = sim.inject({ kind: 'disappear', target: { device: M1 } });
    await eventually('link lost', () => dev(env)?.connected === false);
    expect(await connect(client)).toMatchObject(ABORT);
    sim.inject({ kind: 'disappear', target: { device: M2 }, forMs: 200 });
    await client.call('/org/bluez/hci0', A1, 'StartDiscovery');
    expect(dev(env, M2)).toBeUndefined();
    await eventually('M2 reappears after forMs', () => dev(env, M2) !== undefined);
    handle.clear();
    expect((await connect(client)).ok).toBe(true);
  });

  it('hang: the call is never answered; later calls are; stopping the simulator does not wait for it', async () => {
    const { sim, client } = await start();
    sim.inject({ kind: 'hang', target: { device: M1 }, interface: D1, member: 'Connect', count: 1 });
    const hung = connect(client, M1, 'hci0', 300);
    await expect(hung).rejects.toBeInstanceOf(NoReplyWithin);
    expect((await connect(client)).ok).toBe(true);
    expect(sim.calls.filter((c) => c.member === 'Connect').length).toBe(2);

    sim.inject({ kind: 'hang', target: { daemon: true }, interface: A1, member: 'StartDiscovery' });
    const hungForever = client.call('/org/bluez/hci0', A1, 'StartDiscovery', '', [], { timeoutMs: 5000 });
    expect(await stillPending(hungForever, 100)).toBe('pending');
    await sim.stop(); // must not wait for the hung call; the bus answers it for the departed bluetoothd
    expect(await hungForever).toMatchObject({ ok: false, errorName: 'org.freedesktop.DBus.Error.NoReply' });
  });

  it('phantom: Connected=true without ServicesResolved, Disconnect hangs, RemoveDevice clears it and a fresh connect works', async () => {
    const { env, sim, client } = await start();
    sim.inject({ kind: 'phantom', target: { device: M1, adapter: 'hci0' } });
    await eventually('phantom visible', () => dev(env)?.connected === true);
    expect(dev(env)).toMatchObject({ connected: true, servicesResolved: false, phantom: true });
    expect((await connect(client)).ok).toBe(true); // bluetoothd thinks it is connected: success, nothing resolves
    expect(dev(env)?.servicesResolved).toBe(false);
    await expect(
      client.call(DEV('hci0', M1), D1, 'Disconnect', '', [], { timeoutMs: 200 }),
    ).rejects.toBeInstanceOf(NoReplyWithin);
    expect((await client.call('/org/bluez/hci0', A1, 'RemoveDevice', 'o', [DEV('hci0', M1)])).ok).toBe(true);
    expect(sim.state().faults).toEqual([]);
    await client.call('/org/bluez/hci0', A1, 'StartDiscovery');
    await eventually('rediscovered', () => dev(env) !== undefined);
    await connected(env, client);
  });

  it('stale-in-progress: every Connect says InProgress until a Disconnect cancels the orphaned connect', async () => {
    const { sim, client } = await start();
    sim.inject({ kind: 'stale-in-progress', target: { device: M1 } });
    for (let i = 0; i < 2; i++) {
      expect(await connect(client)).toMatchObject({ ok: false, errorName: 'org.bluez.Error.InProgress' });
    }
    expect((await client.call(DEV('hci0', M1), D1, 'Disconnect')).ok).toBe(true);
    expect((await connect(client)).ok).toBe(true);
  });

  it('empty-gatt: the next connect resolves with no GATT services, the one after has them', async () => {
    const { env, sim, client } = await start();
    sim.inject({ kind: 'empty-gatt', target: { device: M1 }, count: 1 });
    await connected(env, client);
    expect(dev(env)?.gattServices).toEqual([]);
    expect((await client.managedPaths()).filter((p) => p.startsWith(`${DEV('hci0', M1)}/`))).toEqual([]);
    await client.call(DEV('hci0', M1), D1, 'Disconnect');
    await connected(env, client);
    expect(dev(env)?.gattServices).toHaveLength(2);
  });

  it('late-gatt: ServicesResolved=true comes first, the service objects after the delay', async () => {
    const { env, sim, client } = await start();
    sim.inject({ kind: 'late-gatt', target: { device: M1 }, ms: 150 });
    await connected(env, client);
    expect(dev(env)?.gattServices).toEqual([]);
    await eventually('services appear', () => dev(env)?.gattServices.length === 2);
    await eventually('client saw them', () => client.lines().some((l) => l.includes('/service0010')));
    const lines = client.lines();
    expect(lines.indexOf('signal Device1 ServicesResolved=true')).toBeLessThan(
      lines.findIndex((l) => l.startsWith('signal InterfacesAdded') && l.includes('/service0010')),
    );
  });

  it('rf-abort: the link is up briefly, then Connect fails with le-connection-abort-by-local', async () => {
    const { sim, client } = await start();
    sim.inject({ kind: 'rf-abort', target: { device: M1 }, count: 1, linkUpMs: 30 });
    expect(await connect(client)).toMatchObject(ABORT);
    const lines = client.lines((e) => e.path === DEV('hci0', M1) || e.member === 'Connect');
    expect(lines).toEqual([
      'signal Device1 Connected=true',
      'signal Device1 Connected=false',
      'error Connect org.bluez.Error.Failed',
    ]);
    expect((await connect(client)).ok).toBe(true);
  });

  it('zombie: notifications stop while Connected stays true', async () => {
    const { env, sim, client } = await start();
    await connected(env, client);
    const tx = `${DEV('hci0', M1)}/service0020/char0023`;
    expect((await client.call(tx, 'org.bluez.GattCharacteristic1', 'StartNotify')).ok).toBe(true);
    expect(sim.notify(M1, NUS_TX, [1])).toBe(1);
    const zombie = sim.inject({ kind: 'zombie', target: { device: M1 } });
    expect(sim.notify(M1, NUS_TX, [2])).toBe(0);
    expect(dev(env)?.connected).toBe(true);
    zombie.clear();
    expect(sim.notify(M1, NUS_TX, [3])).toBe(1);
    await eventually(
      'two values seen',
      () => client.lines().filter((l) => l.startsWith('signal GattCharacteristic1 Value')).length === 2,
    );
    expect(client.lines().filter((l) => l.startsWith('signal GattCharacteristic1 Value'))).toEqual([
      'signal GattCharacteristic1 Value={"type":"Buffer","data":[1]}',
      'signal GattCharacteristic1 Value={"type":"Buffer","data":[3]}',
    ]);
  });

  it('slot-limit: connects beyond N links fail like a saturated controller; another adapter still connects', async () => {
    const { env, sim, client } = await start();
    sim.inject({ kind: 'slot-limit', target: { adapter: 'hci0' }, slots: 1 });
    await connected(env, client, M1);
    expect(await connect(client, M2)).toMatchObject(ABORT);
    expect((await connect(client, M2, 'hci1')).ok).toBe(true);
    expect(() => sim.inject({ kind: 'slot-limit', target: { device: M1 }, slots: 1 } as FaultSpec)).toThrow(
      TypeError,
    );
  });

  it('slotLimit on the adapter spec behaves the same', async () => {
    const { env, client } = await start({ adapters: [{ name: 'hci0', slotLimit: 1 }] });
    await connected(env, client, M1);
    expect(await connect(client, M2)).toMatchObject(ABORT);
  });

  it('power-off: Powered=false drops links; clearing powers it back on', async () => {
    const { env, sim, client } = await start();
    await connected(env, client);
    const off = sim.inject({ kind: 'power-off', target: { adapter: 'hci0' } });
    await eventually('off', () => env.sim.state().adapters[0]?.powered === false);
    expect(dev(env)?.connected).toBe(false);
    expect(await connect(client)).toMatchObject({ ok: false, errorName: 'org.bluez.Error.NotReady' });
    off.clear();
    await eventually('on', () => env.sim.state().adapters[0]?.powered === true);
    expect((await connect(client)).ok).toBe(true);
  });

  it('remove-adapter: the adapter and its devices vanish, and come back after forMs', async () => {
    const { env, sim, client } = await start();
    await connected(env, client);
    sim.inject({ kind: 'remove-adapter', target: { adapter: 'hci0' }, forMs: 200 });
    expect(sim.state().adapters.map((a) => a.name)).toEqual(['hci1']);
    expect(await client.call('/org/bluez/hci0', A1, 'StartDiscovery')).toMatchObject({
      ok: false,
      errorName: 'org.freedesktop.DBus.Error.UnknownObject',
    });
    await eventually('adapter back', () => sim.state().adapters.some((a) => a.name === 'hci0'));
    await eventually('client saw it', () =>
      client.lines().includes('signal InterfacesAdded /org/bluez/hci0'),
    );
    expect(client.lines()).toContain('signal InterfacesRemoved /org/bluez/hci0');
    expect(dev(env)?.connected).toBe(false);
  });

  it('external-scanner: StartDiscovery says InProgress while Discovering stays false', async () => {
    const { sim, client } = await start();
    const scanner = sim.inject({ kind: 'external-scanner', target: { adapter: 'hci0' } });
    expect(await client.call('/org/bluez/hci0', A1, 'StartDiscovery')).toMatchObject({
      ok: false,
      errorName: 'org.bluez.Error.InProgress',
    });
    expect(await client.value('/org/bluez/hci0', A1, 'Discovering')).toBe(false);
    scanner.clear();
    expect((await client.call('/org/bluez/hci0', A1, 'StartDiscovery')).ok).toBe(true);
  });

  it('restart-daemon: org.bluez gets a new owner and a fresh object tree', async () => {
    const { env, sim, client } = await start();
    await connected(env, client);
    const before = sim.state().busName;
    sim.inject({ kind: 'restart-daemon', target: { daemon: true }, downMs: 30 });
    await eventually(
      'back with a new owner',
      () => sim.state().daemonRunning && sim.state().busName !== before,
    );
    expect(dev(env)).toMatchObject({ connected: false, servicesResolved: false });
  });

  it('bus-stall: calls queue up during the stall and are answered afterwards', async () => {
    const { sim, client } = await start();
    sim.inject({ kind: 'bus-stall', target: { daemon: true }, ms: 300 });
    const call = client.get('/org/bluez/hci0', A1, 'Powered');
    expect(await stillPending(call, 100)).toBe('pending');
    expect(await call).toMatchObject({ ok: true });
    expect(sim.calls.filter((c) => c.member === 'Get').length).toBe(1);
  });

  it('service-changed: a connected central sees the GATT objects go and come back with the new service; the link stays', async () => {
    const { env, sim, client } = await start();
    await connected(env, client);
    await eventually('client saw ServicesResolved', () =>
      client.lines().includes('signal Device1 ServicesResolved=true'),
    );
    client.log.length = 0;
    const late = '6e400010-b5a3-f393-e0a9-e50e24dcca9e';
    sim.addService(M1, {
      uuid: late,
      characteristics: [{ uuid: '6e400011-b5a3-f393-e0a9-e50e24dcca9e', flags: ['read'], value: [7] }],
    });
    await eventually('new service exported', () => dev(env)?.gattServices.includes(late) === true);
    await eventually('client saw it', () =>
      client.lines().some((l) => l.startsWith('signal InterfacesAdded') && l.includes('/service0030')),
    );
    const lines = client.lines((e) => e.path.startsWith(DEV('hci0', M1)) || e.path === '/');
    const firstRemoved = lines.findIndex((l) => l.startsWith(`signal InterfacesRemoved ${DEV('hci0', M1)}/`));
    const firstAdded = lines.findIndex((l) => l.startsWith(`signal InterfacesAdded ${DEV('hci0', M1)}/`));
    expect(firstRemoved).toBeGreaterThanOrEqual(0);
    expect(firstRemoved).toBeLessThan(firstAdded);
    expect(lines.filter((l) => l.includes('Connected=') || l.includes('ServicesResolved='))).toEqual([]);
    expect(dev(env)).toMatchObject({ connected: true, servicesResolved: true });
    expect(dev(env)?.gattServices).toHaveLength(3);
    const read = await client.call(
      `${DEV('hci0', M1)}/service0030/char0031`,
      'org.bluez.GattCharacteristic1',
      'ReadValue',
      'a{sv}',
      [{}],
    );
    expect(read).toMatchObject({ ok: true });
    expect([...(read.body[0] as Buffer)]).toEqual([7]);
    // The cached tree of a central that was not connected is replaced when it next connects.
    expect(dev(env, M1, 'hci1')?.gattServices).toEqual([]);
    await connected(env, client, M1, 'hci1');
    expect(dev(env, M1, 'hci1')?.gattServices).toContain(late);
  });

  it('service-changed as a fault: armed with afterMs, one-shot; a device target is required and the service is validated', async () => {
    const { env, sim, client } = await start(undefined, { behaviour: 'bluez-5.66' });
    await connected(env, client);
    const late = '6e400020-b5a3-f393-e0a9-e50e24dcca9e';
    sim.inject({
      kind: 'service-changed',
      target: { device: M1 },
      afterMs: 30,
      service: { uuid: late, characteristics: [] },
    });
    expect(dev(env)?.gattServices).not.toContain(late);
    await eventually('grown', () => dev(env)?.gattServices.includes(late) === true);
    expect(sim.state().faults).toEqual([]);
    expect(() => sim.addService(M1, { uuid: late, characteristics: [] })).toThrow(RangeError);
    expect(() =>
      sim.inject({
        kind: 'service-changed',
        target: { adapter: 'hci0' },
        service: { uuid: late, characteristics: [] },
      }),
    ).toThrow(/fault\.target must name a device/);
    expect(() =>
      sim.inject({ kind: 'service-changed', target: { device: M1 }, service: { uuid: 'x' } } as never),
    ).toThrow(/fault\.service\.uuid must be a 128-bit UUID/);
    expect(() => sim.addService(M1, { uuid: 'nope', characteristics: [] })).toThrow(
      /addService: service\.uuid must be a 128-bit UUID/,
    );
  });

  it('silent-connected: the link comes up without a Connected=true signal, the property reads true; used up after count links', async () => {
    const { env, sim, client } = await start();
    sim.inject({ kind: 'silent-connected', target: { device: M1 }, count: 1 });
    await connected(env, client);
    await eventually('client saw ServicesResolved', () =>
      client.lines().includes('signal Device1 ServicesResolved=true'),
    );
    expect(client.lines()).not.toContain('signal Device1 Connected=true');
    expect(await client.value(DEV('hci0', M1), D1, 'Connected')).toBe(true);
    expect(sim.state().faults).toEqual([]);
    await client.call(DEV('hci0', M1), D1, 'Disconnect');
    expect(client.lines()).toContain('signal Device1 Connected=false');
    client.log.length = 0;
    await connected(env, client);
    await eventually('Connected=true signalled again', () =>
      client.lines().includes('signal Device1 Connected=true'),
    );
  });

  it('rejects malformed faults before doing anything, naming the field', () => {
    return start().then(({ sim }) => {
      expect(() => sim.inject({ kind: 'nope' } as unknown as FaultSpec)).toThrow(
        /fault\.kind must be one of/,
      );
      expect(() =>
        sim.inject({ kind: 'fail-connect', target: { device: M1 }, count: 0 } as unknown as FaultSpec),
      ).toThrow(/fault\.count/);
      expect(() => sim.inject({ kind: 'phantom', target: { device: 'nope' } })).toThrow(
        /fault\.target\.device/,
      );
      expect(sim.state().faults).toEqual([]);
    });
  });
});

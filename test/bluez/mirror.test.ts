import dbus from 'dbus-next';
import { afterEach, describe, expect, it } from 'vitest';
import { BluezSimulator, startSimulatedBluez } from '../../src/testing/index.js';
import type { DeviceSpec, Scenario } from '../../src/testing/index.js';
import { BusLostError, MIRROR_MATCH_RULES, WaitTimeoutError, openBluez } from '../../src/bluez/index.js';
import type { BluezClient, MirrorChange } from '../../src/bluez/index.js';
import { acquireBus } from '../../src/bluez/bus.js';
import { startPrivateBus } from '../../src/testing/index.js';
import { daemonStats, rawConnection, sleep, startMonitor } from './helpers.js';

type Env = Awaited<ReturnType<typeof startSimulatedBluez>>;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function mac(i: number): string {
  return `C0:FF:EE:00:00:${i.toString(16).toUpperCase().padStart(2, '0')}`;
}

function devices(n: number, knownOn: string[] = ['hci0']): DeviceSpec[] {
  return Array.from({ length: n }, (_, i) => ({
    address: mac(i + 1),
    name: `sensor-${i + 1}`,
    knownOn,
    services: [
      {
        uuid: '0000181a-0000-1000-8000-00805f9b34fb',
        characteristics: [
          { uuid: '00002a6e-0000-1000-8000-00805f9b34fb', flags: ['read', 'notify'], value: [21] },
        ],
      },
    ],
  }));
}

async function start(scenario: Scenario): Promise<Env> {
  const env = await startSimulatedBluez({ scenario, latencyScale: 0.01 });
  cleanups.push(() => env.stop());
  return env;
}

async function open(env: Env, extra: Parameters<typeof openBluez>[0] = {}): Promise<BluezClient> {
  const client = await openBluez({ busAddress: env.address, ...extra });
  cleanups.push(() => client.close());
  return client;
}

describe('the ObjectManager mirror', () => {
  it('mirrors adapters and known devices after one GetManagedObjects, with typed snapshots', async () => {
    const env = await start({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [{ address: 'AA:BB:CC:DD:EE:01', name: 'bms', knownOn: ['hci1'], rssi: -70 }],
    });
    const client = await open(env);
    expect(client.adapters().map((a) => a.name)).toEqual(['hci0', 'hci1']);
    expect(client.adapters().every((a) => a.powered)).toBe(true);
    const dev = client.device('hci1', 'aa:bb:cc:dd:ee:01');
    expect(dev).toMatchObject({ adapter: 'hci1', address: 'AA:BB:CC:DD:EE:01', connected: false });
    expect(client.device('hci0', 'AA:BB:CC:DD:EE:01')).toBeUndefined();
    expect(client.mirror.bluezReady).toBe(true);
  });

  it('idle silence: with 20 devices and nothing happening for 2 s the library sends 0 D-Bus messages', async () => {
    const env = await start({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: devices(20, ['hci0', 'hci1']),
    });
    const client = await open(env);
    expect(client.mirror.devices()).toHaveLength(40);
    const monitor = await startMonitor(env.address);
    cleanups.push(() => monitor.close());
    env.sim.clearCalls();
    const me = client.uniqueName ?? '';
    expect(me).toMatch(/^:/);

    await sleep(2000);

    expect(monitor.sentBy(me)).toBe(0);
    expect(env.sim.calls.filter((c) => c.sender === me)).toEqual([]);
    // The monitor does see traffic in general (it is not blind): one call proves it.
    await client.startDiscovery('hci0', { timeoutMs: 5000 });
    await sleep(100);
    expect(monitor.sentBy(me)).toBeGreaterThan(0);
    await client.stopDiscovery('hci0', { timeoutMs: 5000 });
  });

  it('waits for "device appeared on hci1" and "Connected became false" without polling', async () => {
    const env = await start({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [{ address: 'AA:BB:CC:DD:EE:02', inRange: ['hci1'] }],
    });
    const client = await open(env);
    expect(client.device('hci1', 'AA:BB:CC:DD:EE:02')).toBeUndefined();
    const appeared = client.mirror.waitFor((m) => m.device('hci1', 'AA:BB:CC:DD:EE:02'), {
      timeoutMs: 15_000,
    });
    await client.startDiscovery('hci1', { timeoutMs: 5000 });
    const dev = await appeared;
    expect(dev.adapter).toBe('hci1');
    await client.stopDiscovery('hci1', { timeoutMs: 5000 });

    await client.connect('hci1', 'AA:BB:CC:DD:EE:02', { timeoutMs: 15_000, waitServicesResolved: true });
    expect(client.device('hci1', 'AA:BB:CC:DD:EE:02')?.servicesResolved).toBe(true);
    const down = client.mirror.waitFor((m) => m.device('hci1', 'AA:BB:CC:DD:EE:02')?.connected === false, {
      timeoutMs: 15_000,
    });
    env.sim.inject({ kind: 'link-drop', target: { device: 'AA:BB:CC:DD:EE:02', adapter: 'hci1' } });
    await expect(down).resolves.toBe(true);
    expect(client.mirror.pendingWaits).toBe(0);
  });

  it('a wait rejects with WaitTimeoutError at its deadline and with the reason on abort; no waiter is left', async () => {
    const env = await start({ adapters: [{ name: 'hci0' }] });
    const client = await open(env);
    const never = (): boolean => false;
    await expect(
      client.mirror.waitFor(never, { timeoutMs: 100, description: 'never' }),
    ).rejects.toBeInstanceOf(WaitTimeoutError);
    const controller = new AbortController();
    const waiting = client.mirror.waitFor(never, { signal: controller.signal });
    expect(client.mirror.pendingWaits).toBe(1);
    controller.abort();
    await expect(waiting).rejects.toMatchObject({ name: 'AbortError' });
    expect(client.mirror.pendingWaits).toBe(0);
    // close() rejects the waits that are still pending instead of leaving them forever.
    const orphan = client.mirror.waitFor(never).catch((e: unknown) => e);
    await client.close();
    expect(await orphan).toBeInstanceOf(BusLostError);
  });

  it('a bluetoothd restart rebuilds the mirror, emits the event, and reports no stale object afterwards', async () => {
    const env = await start({ adapters: [{ name: 'hci0' }], devices: devices(3) });
    const client = await open(env);
    await client.connect('hci0', mac(1), { timeoutMs: 15_000, waitServicesResolved: true });
    expect(client.gattServices('hci0', mac(1)).length).toBeGreaterThan(0);
    const oldOwner = client.mirror.owner;

    const changes: MirrorChange[] = [];
    const owners: Array<string | undefined> = [];
    cleanups.push(client.mirror.on('change', (c) => changes.push(c)));
    cleanups.push(client.mirror.on('ownerChanged', (e) => owners.push(e.current)));
    const rebuilt = client.mirror.waitFor(
      (m) => m.bluezReady && m.owner !== undefined && owners.length >= 2,
      {
        timeoutMs: 15_000,
      },
    );
    await env.sim.restartDaemon();
    await rebuilt;

    expect(owners[0]).toBeUndefined(); // bluetoothd went away…
    expect(owners.at(-1)).toBeDefined(); // …and came back
    expect(oldOwner).toBeDefined();
    // A fresh bluetoothd has no link: the device (if still cached) is not connected, and no GATT
    // object of the old connection is left in the mirror.
    expect(client.device('hci0', mac(1))?.connected ?? false).toBe(false);
    expect(client.gattServices('hci0', mac(1))).toEqual([]);
    expect(changes.some((c) => c.type === 'interfacesRemoved' && c.path.includes('dev_'))).toBe(true);
    // Everything in the mirror exists in the simulator right now.
    const state = env.sim.state();
    for (const path of client.mirror.paths()) expect(state.objects).toContain(path);
  });

  it('a service started before bluetoothd waits for org.bluez (no polling) and then sees its objects', async () => {
    const env = await start({ adapters: [{ name: 'hci0' }] });
    const client = await open(env);
    const monitor = await startMonitor(env.address);
    cleanups.push(() => monitor.close());
    const down = client.mirror.waitFor((m) => m.owner === undefined, { timeoutMs: 15_000 });
    const restart = env.sim.restartDaemon({ downMs: 1500 });
    await down;
    expect(client.adapters()).toEqual([]);
    monitor.clear();
    await client.waitForBluez({ timeoutMs: 15_000 });
    await restart;
    expect(client.adapters().map((a) => a.name)).toEqual(['hci0']);
    // While bluetoothd was away we sent nothing but the resync that follows its return.
    const mine = monitor.messages.filter((m) => m.sender === client.uniqueName).map((m) => m.member);
    expect(mine).toEqual(['GetNameOwner', 'GetManagedObjects']);
  });

  it('a killed dbus-daemon empties the mirror; when a new daemon and bluetoothd appear at the address it resyncs', async () => {
    const scenario: Scenario = { adapters: [{ name: 'hci0' }], devices: devices(2) };
    const env = await start(scenario);
    const client = await open(env);
    expect(client.mirror.devices()).toHaveLength(2);
    const firstName = client.uniqueName;
    const gone = client.mirror.waitFor((m) => m.owner === undefined && m.size === 0, { timeoutMs: 15_000 });
    const stuck = client.connect('hci0', mac(1), { timeoutMs: 60_000 }).catch((e: unknown) => e);
    await env.bus.kill();
    await gone;
    expect(await stuck).toBeInstanceOf(BusLostError); // a call in flight is rejected, not left pending
    await expect(client.waitForBluez({ timeoutMs: 50 })).rejects.toBeInstanceOf(WaitTimeoutError);

    await env.bus.restart();
    const back = client.waitForBluez({ timeoutMs: 15_000 });
    const sim2 = await BluezSimulator.start({ busAddress: env.address, scenario, latencyScale: 0.01 });
    cleanups.push(() => sim2.stop());
    await back;
    // (A new daemon numbers connections from :1.0 again, so the unique name may repeat.)
    expect(firstName).toBeDefined();
    const rules = (await daemonStats(env.address)).rulesByConnection.get(client.uniqueName ?? '') ?? [];
    expect(rules.map(normalizeRule).sort()).toEqual([...MIRROR_MATCH_RULES].map(normalizeRule).sort());
    expect(client.mirror.devices()).toHaveLength(2);
    // Our match rules were re-added on the new connection: signals flow again.
    await client.connect('hci0', mac(1), { timeoutMs: 15_000, waitServicesResolved: true });
    expect(client.device('hci0', mac(1))?.servicesResolved).toBe(true);
  });

  it('bluetoothd leaves the bus while the mirror waits for its GetManagedObjects: the call is abandoned at once, not left running to its deadline (found by the soak: a 2 s deadline timer outlived the cycle)', async () => {
    const daemon = await startPrivateBus();
    cleanups.push(() => daemon.stop());
    // A stand-in bluetoothd that answers the first GetManagedObjects and never the later ones, and
    // restarts on the same connection (gives org.bluez up and takes it again), as the simulator does.
    const fake = await rawConnection(daemon.address);
    cleanups.push(() => fake.disconnect());
    let answered = 0;
    const asked: number[] = [];
    fake.addMethodHandler((msg: dbus.Message) => {
      if (msg.member !== 'GetManagedObjects') return false;
      asked.push(Date.now());
      if (answered++ === 0) fake.send(dbus.Message.newMethodReturn(msg, 'a{oa{sa{sv}}}', [{}]));
      return true;
    });
    await fake.requestName('org.bluez', 0);
    const client = await open({ address: daemon.address } as Env, { dbusCallTimeoutMs: 30_000 });
    expect(client.mirror.bluezReady).toBe(true);
    const shared = acquireBus(daemon.address);
    cleanups.push(() => shared.release());
    const idle = shared.pendingCount;

    await fake.releaseName('org.bluez');
    await fake.requestName('org.bluez', 0);
    for (let i = 0; i < 400 && asked.length < 2; i += 1) await sleep(5);
    expect(asked.length).toBe(2);
    expect(shared.pendingCount).toBe(idle + 1); // the resync's GetManagedObjects, unanswered

    await fake.releaseName('org.bluez');
    for (let i = 0; i < 400 && client.mirror.owner !== undefined; i += 1) await sleep(5);
    expect(client.mirror.owner).toBeUndefined();
    // Abandoned when the mirror saw org.bluez go, not 30 s later.
    expect(shared.pendingCount).toBe(idle);
  });

  it('after close the daemon holds no match rule and no connection from the library', async () => {
    const env = await start({ adapters: [{ name: 'hci0' }], devices: devices(2) });
    const client = await open(env);
    const me = client.uniqueName ?? '';
    const before = await daemonStats(env.address);
    expect((before.rulesByConnection.get(me) ?? []).map(normalizeRule).sort()).toEqual(
      [...MIRROR_MATCH_RULES].map(normalizeRule).sort(),
    );
    const nb = client.nodeBle(); // node-ble shares the same connection
    expect((await nb.adapters()).sort()).toEqual(['hci0']);
    await client.close();
    await client.close(); // idempotent
    const after = await daemonStats(env.address);
    expect(after.names).not.toContain(me);
    expect(after.rulesByConnection.has(me)).toBe(false);
    expect(after.activeConnections).toBe(before.activeConnections - 1);
  });
});

/** dbus-daemon prints rules with keys in its own order; compare as sorted key=value sets. */
function normalizeRule(rule: string): string {
  return rule.split(',').sort().join(',');
}

import dbus from 'dbus-next';

const { Variant } = dbus;
import { afterEach, describe, expect, it } from 'vitest';
import { startSimulatedBluez } from '../../src/testing/index.js';
import type { Scenario, SimulatedBluez, SimulatedBluezOptions } from '../../src/testing/index.js';
import { BATTERY_LEVEL, BATTERY_SERVICE, bms, eventually } from './fixtures.js';
import type { CharacteristicSpec } from '../../src/testing/index.js';

const tick: CharacteristicSpec = {
  uuid: BATTERY_LEVEL,
  flags: ['read', 'notify'],
  value: [1],
  notifyIntervalMs: 5,
};
import { DEV, RawClient } from './helpers/raw-client.js';

const MAC = 'AA:BB:CC:DD:EE:01';
const D1 = 'org.bluez.Device1';
const A1 = 'org.bluez.Adapter1';
const dev0 = DEV('hci0', MAC);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function start(scenario: Scenario, opts: Omit<SimulatedBluezOptions, 'scenario'> = {}) {
  const env: SimulatedBluez = await startSimulatedBluez({ latencyScale: 0.01, ...opts, scenario });
  cleanups.push(() => env.stop());
  const client = await RawClient.connect(env.address);
  cleanups.push(() => client.close());
  return { env, sim: env.sim, client };
}

const known = (extra = {}) => ({
  adapters: [{ name: 'hci0' }, { name: 'hci1' }],
  devices: [bms(MAC, { knownOn: ['hci0'], ...extra })],
});

function device(env: SimulatedBluez, adapter = 'hci0') {
  return env.sim
    .state()
    .adapters.find((a) => a.name === adapter)
    ?.devices.find((d) => d.address === MAC);
}

describe('Device1.Connect / Disconnect as bluetoothd 5.66', () => {
  it('Connect: Connected=true, then the reply, then GATT objects, then ServicesResolved=true', async () => {
    const { env, client } = await start(known());
    const r = await client.call(dev0, D1, 'Connect');
    expect(r.ok).toBe(true);
    await eventually('client saw ServicesResolved', () =>
      client.lines().includes('signal Device1 ServicesResolved=true'),
    );
    const lines = client.lines((e) => e.path.startsWith(dev0) || e.path === '/' || e.member === 'Connect');
    const at = (prefix: string) => lines.findIndex((l) => l.startsWith(prefix));
    expect(at('signal Device1 Connected=true')).toBeGreaterThanOrEqual(0);
    expect(at('signal Device1 Connected=true')).toBeLessThan(at('reply Connect'));
    expect(at('reply Connect')).toBeLessThan(at(`signal InterfacesAdded ${dev0}/service`));
    expect(at(`signal InterfacesAdded ${dev0}/service`)).toBeLessThan(
      at('signal Device1 ServicesResolved=true'),
    );
    // GATT object paths are named by handle, as bluetoothd's gatt-client does.
    expect(device(env)?.gattServices.length).toBe(2);
    expect((await client.managedPaths()).filter((p) => p.startsWith(dev0))).toContain(
      `${dev0}/service0010/char0011`,
    );
    expect(await client.value(dev0, D1, 'UUIDs')).toContain(BATTERY_LEVEL.replace('2a19', '180f'));
  });

  it('a second Connect while one is pending fails with InProgress (5.82+), or Failed "Operation already in progress" (5.66–5.81)', async () => {
    const { client } = await start(known(), { timing: { connectMs: 300 } });
    const first = client.call(dev0, D1, 'Connect');
    const second = await client.call(dev0, D1, 'Connect');
    expect(second).toMatchObject({ ok: false, errorName: 'org.bluez.Error.InProgress', text: 'In Progress' });
    expect((await first).ok).toBe(true);

    const legacy = await start(known(), {
      timing: { connectMs: 300 },
      behaviour: { legacyPendingConnectError: true },
    });
    const p = legacy.client.call(dev0, D1, 'Connect');
    expect(await legacy.client.call(dev0, D1, 'Connect')).toMatchObject({
      ok: false,
      errorName: 'org.bluez.Error.Failed',
      text: 'Operation already in progress',
    });
    expect((await p).ok).toBe(true);
  });

  it('Connect on a powered-off adapter fails with NotReady', async () => {
    const { client } = await start(known());
    expect((await client.set('/org/bluez/hci0', A1, 'Powered', 'b', false)).ok).toBe(true);
    expect(await client.call(dev0, D1, 'Connect')).toMatchObject({
      ok: false,
      errorName: 'org.bluez.Error.NotReady',
    });
  });

  it('Disconnect with Cache=no: ServicesResolved=false at once, GATT objects go, Connected=false, then the reply', async () => {
    const { client } = await start(known(), { behaviour: { gattCache: 'no' } });
    await client.call(dev0, D1, 'Connect');
    await eventually('client saw ServicesResolved', () =>
      client.lines().includes('signal Device1 ServicesResolved=true'),
    );
    client.log.length = 0;
    expect((await client.call(dev0, D1, 'Disconnect')).ok).toBe(true);
    const lines = client.lines((e) => e.path.startsWith(dev0) || e.path === '/' || e.member === 'Disconnect');
    const at = (prefix: string) => lines.findIndex((l) => l.startsWith(prefix));
    expect(at('signal Device1 ServicesResolved=false')).toBe(0);
    expect(at(`signal InterfacesRemoved ${dev0}/service`)).toBeGreaterThan(0);
    expect(at(`signal InterfacesRemoved ${dev0}/service`)).toBeLessThan(at('signal Device1 Connected=false'));
    expect(at('signal Device1 Connected=false')).toBeLessThan(at('reply Disconnect'));
    expect((await client.managedPaths()).filter((p) => p.startsWith(`${dev0}/`))).toEqual([]);
    // Disconnect of a device that is not connected succeeds, as in bluetoothd.
    expect((await client.call(dev0, D1, 'Disconnect')).ok).toBe(true);
  });

  it('Disconnect during a pending Connect cancels it: the Connect fails with br-connection-canceled', async () => {
    const { env, client } = await start(known(), { timing: { connectMs: 2000 } });
    const pending = client.call(dev0, D1, 'Connect');
    await eventually('connecting', () => device(env)?.connecting === true);
    expect((await client.call(dev0, D1, 'Disconnect')).ok).toBe(true);
    expect(await pending).toMatchObject({
      ok: false,
      errorName: 'org.bluez.Error.Failed',
      text: 'br-connection-canceled',
    });
    expect(device(env)).toMatchObject({ connected: false, connecting: false });
  });

  it('with main.conf Cache=always (scenario behaviour) GATT objects stay exported while disconnected', async () => {
    const { env, client } = await start({ ...known(), behaviour: { gattCache: 'always' } });
    await client.call(dev0, D1, 'Connect');
    await eventually('resolved', () => device(env)?.servicesResolved === true);
    await client.call(dev0, D1, 'Disconnect');
    expect(device(env)).toMatchObject({ connected: false, servicesResolved: false });
    expect(
      (await client.managedPaths()).filter((p) => p.startsWith(`${dev0}/service`)).length,
    ).toBeGreaterThan(0);
    const chrc = `${dev0}/service0010/char0011`;
    expect(
      await client.call(chrc, 'org.bluez.GattCharacteristic1', 'ReadValue', 'a{sv}', [{}]),
    ).toMatchObject({
      ok: false,
      errorName: 'org.bluez.Error.Failed',
      text: 'Not connected',
    });
    await client.call(dev0, D1, 'Connect');
    await eventually('resolved again', () => device(env)?.servicesResolved === true);
  });

  it('a device that is not advertising in range makes Connect fail after the LE connect timeout', async () => {
    const { client } = await start(known({ inRange: false }), { timing: { connectTimeoutMs: 100 } });
    expect(await client.call(dev0, D1, 'Connect')).toMatchObject({
      ok: false,
      errorName: 'org.bluez.Error.Failed',
      text: 'le-connection-abort-by-local',
    });
  });

  it('RemoveDevice of a connected device disconnects it first; unknown paths give DoesNotExist / UnknownObject', async () => {
    const { env, client } = await start(known());
    await client.call(dev0, D1, 'Connect');
    await eventually('client saw ServicesResolved', () =>
      client.lines().includes('signal Device1 ServicesResolved=true'),
    );
    client.log.length = 0;
    expect((await client.call('/org/bluez/hci0', A1, 'RemoveDevice', 'o', [dev0])).ok).toBe(true);
    // The object is gone as soon as the reply is out; its InterfacesRemoved follows the reply.
    expect(device(env)).toBeUndefined();
    await eventually('client saw the removal', () =>
      client.lines().includes(`signal InterfacesRemoved ${dev0}`),
    );
    const lines = client.lines(
      (e) => e.path.startsWith(dev0) || e.path === '/' || e.member === 'RemoveDevice',
    );
    expect(lines.indexOf('signal Device1 ServicesResolved=false')).toBeLessThan(
      lines.indexOf('signal Device1 Connected=false'),
    );
    expect(lines.indexOf('signal Device1 Connected=false')).toBeLessThan(lines.indexOf('reply RemoveDevice'));
    expect(lines.indexOf('reply RemoveDevice')).toBeLessThan(
      lines.indexOf(`signal InterfacesRemoved ${dev0}`),
    );
    expect(await client.call('/org/bluez/hci0', A1, 'RemoveDevice', 'o', [dev0])).toMatchObject({
      ok: false,
      errorName: 'org.bluez.Error.DoesNotExist',
    });
    expect(await client.call(dev0, D1, 'Connect')).toMatchObject({
      ok: false,
      errorName: 'org.freedesktop.DBus.Error.UnknownObject',
    });
  });

  it('link loss with Cache=no: Connected=false first, then ServicesResolved=false, then the GATT objects go (the reverse of Disconnect)', async () => {
    const { env, sim, client } = await start(known(), { behaviour: { gattCache: 'no' } });
    await client.call(dev0, D1, 'Connect');
    await eventually('client saw ServicesResolved', () =>
      client.lines().includes('signal Device1 ServicesResolved=true'),
    );
    client.log.length = 0;
    sim.dropLink(MAC);
    await eventually('client saw the link go', () =>
      client.lines().some((l) => l.startsWith(`signal InterfacesRemoved ${dev0}/service`)),
    );
    const lines = client.lines((e) => e.path.startsWith(dev0) || e.path === '/');
    expect(lines.indexOf('signal Device1 Connected=false')).toBe(0);
    expect(lines.indexOf('signal Device1 ServicesResolved=false')).toBe(1);
    expect(lines[2]).toMatch(/^signal InterfacesRemoved .*\/service/);
    expect(device(env)).toMatchObject({ connected: false, servicesResolved: false, gattServices: [] });
  });

  it('power-off drops every link on the adapter and ends its discovery', async () => {
    const { env, client } = await start({
      adapters: [{ name: 'hci0' }],
      devices: [bms(MAC, { knownOn: ['hci0'] }), bms('AA:BB:CC:DD:EE:02', { knownOn: ['hci0'] })],
    });
    await client.call('/org/bluez/hci0', A1, 'StartDiscovery');
    await client.call(dev0, D1, 'Connect');
    await client.call(DEV('hci0', 'AA:BB:CC:DD:EE:02'), D1, 'Connect');
    await eventually(
      'both connected',
      () => env.sim.state().adapters[0]?.devices.every((d) => d.servicesResolved) === true,
    );
    expect((await client.set('/org/bluez/hci0', A1, 'Powered', 'b', false)).ok).toBe(true);
    const a = env.sim.state().adapters[0];
    expect(a).toMatchObject({ powered: false, discovering: false, discoveryClients: [] });
    expect(a?.devices.map((d) => d.connected)).toEqual([false, false]);
    expect(await client.value('/org/bluez/hci0', A1, 'PowerState')).toBe('off');
  });
});

describe('behaviour switches and the bluez-5.66 preset', () => {
  const discovered = { adapters: [{ name: 'hci0' }], devices: [bms(MAC)] };

  async function discoverDevice(env: SimulatedBluez, client: RawClient) {
    expect((await client.call('/org/bluez/hci0', A1, 'StartDiscovery')).ok).toBe(true);
    await eventually('device discovered', () => device(env) !== undefined);
    expect((await client.call('/org/bluez/hci0', A1, 'StopDiscovery')).ok).toBe(true);
    expect(device(env)?.temporary).toBe(true);
  }

  it('bluez-5.66: a power-off underneath bluetoothd keeps the discovered device; Connect fails with Failed "Input/output error"', async () => {
    const { env, sim, client } = await start(discovered, { behaviour: 'bluez-5.66' });
    await discoverDevice(env, client);
    client.log.length = 0;
    sim.inject({ kind: 'power-off', target: { adapter: 'hci0' } });
    await eventually('powered off', () => client.lines().some((l) => l.includes('Powered=false')));
    // adapter_stop: Discovering=false goes out with Powered=false although no discovery ran.
    expect(client.lines().filter((l) => l.startsWith('signal Adapter1'))).toEqual([
      'signal Adapter1 Powered=false Discovering=false PowerState="off"',
    ]);
    expect(await client.call(dev0, D1, 'Connect')).toMatchObject({
      ok: false,
      errorName: 'org.bluez.Error.Failed',
      text: 'Input/output error',
    });
    // dev_connect cleared the temporary flag before the connect failed: the device stays.
    expect(device(env)).toMatchObject({ temporary: false, connected: false });
    expect(client.lines().some((l) => l.startsWith('signal InterfacesRemoved'))).toBe(false);
  });

  it('default: a power-off underneath bluetoothd removes temporary devices; Connect on the unpowered adapter is NotReady', async () => {
    const { env, sim, client } = await start({
      adapters: [{ name: 'hci0' }],
      devices: [bms(MAC), bms('AA:BB:CC:DD:EE:02', { knownOn: ['hci0'] })],
    });
    await discoverDevice(env, client);
    sim.inject({ kind: 'power-off', target: { adapter: 'hci0' } });
    await eventually('temporary device removed', () => device(env) === undefined);
    const known = DEV('hci0', 'AA:BB:CC:DD:EE:02');
    expect(await client.call(known, D1, 'Connect')).toMatchObject({
      ok: false,
      errorName: 'org.bluez.Error.NotReady',
      text: 'Resource Not Ready',
    });
  });

  it('Powered=false over D-Bus removes every temporary device first, in both modes (src/adapter.c property_set_mode)', async () => {
    for (const behaviour of [undefined, 'bluez-5.66'] as const) {
      const { env, client } = await start(discovered, behaviour ? { behaviour } : {});
      await discoverDevice(env, client);
      client.log.length = 0;
      expect((await client.set('/org/bluez/hci0', A1, 'Powered', 'b', false)).ok).toBe(true);
      expect(device(env)).toBeUndefined();
      const lines = client.lines();
      expect(lines.indexOf(`signal InterfacesRemoved ${dev0}`)).toBeGreaterThanOrEqual(0);
      await eventually('client saw Powered=false', () =>
        client.lines().some((l) => l.includes('Powered=false')),
      );
      expect(client.lines().indexOf(`signal InterfacesRemoved ${dev0}`)).toBeLessThan(
        client.lines().findIndex((l) => l.includes('Powered=false')),
      );
    }
  });

  it('a preset sets every answer; single switches can follow it; bad values are refused naming the field', async () => {
    const { env } = await start(discovered, { behaviour: { preset: 'bluez-5.66', gattCache: 'no' } });
    expect(env.sim.behaviour).toEqual({
      gattCache: 'no',
      legacyPendingConnectError: true,
      unpoweredConnectError: 'io-error',
      temporaryDevicesOnPowerOff: 'keep-connectable',
    });
    const scenario = { ...discovered, behaviour: 'bluez-5.66' as const };
    const fromScenario = await start(scenario);
    expect(fromScenario.sim.behaviour.unpoweredConnectError).toBe('io-error');
    await expect(start(discovered, { behaviour: 'bluez-4.0' as never })).rejects.toThrow(
      /behaviour must be one of "bluez-5\.66"/,
    );
    await expect(
      start(discovered, { behaviour: { unpoweredConnectError: 'nope' } as never }),
    ).rejects.toThrow(/behaviour\.unpoweredConnectError must be one of "not-ready", "io-error"/);
    await expect(start({ ...discovered, behaviour: { colour: 'blue' } as never })).rejects.toThrow(
      /scenario\.behaviour\.colour is not a behaviour switch/,
    );
  });
});

describe('properties and objects', () => {
  it('an optional property bluetoothd has no value for is absent: Get → InvalidArgs, GetAll omits it', async () => {
    const { client } = await start(known());
    expect(await client.get(dev0, D1, 'RSSI')).toMatchObject({
      ok: false,
      errorName: 'org.freedesktop.DBus.Error.InvalidArgs',
    });
    const all = await client.call(dev0, 'org.freedesktop.DBus.Properties', 'GetAll', 's', [D1]);
    const props = all.body[0] as Record<string, dbus.Variant>;
    expect(props).not.toHaveProperty('RSSI');
    expect(props.Address?.value).toBe(MAC);
    expect(props.ManufacturerData?.signature).toBe('a{qv}');
    expect(props.Adapter?.value).toBe('/org/bluez/hci0');
    expect(await client.get(dev0, 'org.bluez.Nope1', 'X')).toMatchObject({
      errorName: 'org.freedesktop.DBus.Error.InvalidArgs',
    });
    expect(await client.set(dev0, D1, 'Connected', 'b', true)).toMatchObject({ ok: false });
  });

  it('GetManagedObjects lists /org/bluez, the adapters and the cached devices', async () => {
    const { client } = await start(known());
    expect(await client.managedPaths()).toEqual(['/org/bluez', '/org/bluez/hci0', dev0, '/org/bluez/hci1']);
  });

  it('logs every method call it receives, with the error name when it failed', async () => {
    const { env, client } = await start(known());
    env.sim.clearCalls();
    await client.call('/org/bluez/hci0', A1, 'StopDiscovery');
    await client.get(dev0, D1, 'Connected');
    const mine = env.sim.calls.filter((c) => c.sender === client.name);
    expect(mine.map((c) => [c.interface, c.member, c.error])).toEqual([
      [A1, 'StopDiscovery', 'org.bluez.Error.Failed'],
      ['org.freedesktop.DBus.Properties', 'Get', undefined],
    ]);
    expect(mine.every((c) => c.at >= 0 && c.path.startsWith('/org/bluez'))).toBe(true);
  });
});

describe('discovery', () => {
  it('sessions are per client: same client twice → InProgress, others share, StopDiscovery without one → Failed', async () => {
    const { env, client } = await start({ adapters: [{ name: 'hci0' }] });
    const other = await RawClient.connect(env.address);
    cleanups.push(() => other.close());
    expect((await client.call('/org/bluez/hci0', A1, 'StartDiscovery')).ok).toBe(true);
    expect(await client.call('/org/bluez/hci0', A1, 'StartDiscovery')).toMatchObject({
      ok: false,
      errorName: 'org.bluez.Error.InProgress',
      text: 'Operation already in progress',
    });
    expect((await other.call('/org/bluez/hci0', A1, 'StartDiscovery')).ok).toBe(true);
    expect(env.sim.state().adapters[0]?.discoveryClients.sort()).toEqual([client.name, other.name].sort());
    expect((await client.call('/org/bluez/hci0', A1, 'StopDiscovery')).ok).toBe(true);
    expect(await client.call('/org/bluez/hci0', A1, 'StopDiscovery')).toMatchObject({
      ok: false,
      errorName: 'org.bluez.Error.Failed',
      text: 'No discovery started',
    });
    expect(await client.value('/org/bluez/hci0', A1, 'Discovering')).toBe(true); // `other` still scans
    other.close(); // leaving the bus ends its session (NameOwnerChanged)
    await eventually('discovery stopped', () => env.sim.state().adapters[0]?.discovering === false);
  });

  it('answers StartDiscovery before the first device is announced (bluetoothd 5.66 order)', async () => {
    // The first advertisement is heard half an interval after the scan starts: 100 ms here, far
    // more than the client needs to read the reply first.
    const { env, client } = await start(
      { adapters: [{ name: 'hci0' }], devices: [bms(MAC)] },
      { timing: { advertisingIntervalMs: 200 } },
    );
    expect((await client.call('/org/bluez/hci0', A1, 'StartDiscovery')).ok).toBe(true);
    await eventually('device announced', () => client.lines().includes(`signal InterfacesAdded ${dev0}`));
    const lines = client.lines();
    expect(lines.indexOf('reply StartDiscovery')).toBeLessThan(
      lines.indexOf(`signal InterfacesAdded ${dev0}`),
    );
    expect(lines.indexOf('signal Adapter1 Discovering=true')).toBeLessThan(
      lines.indexOf(`signal InterfacesAdded ${dev0}`),
    );
    expect(device(env)).toBeDefined();
  });

  it('makes in-range devices appear with RSSI, ignores out-of-range ones, and drops temporary devices not seen for TemporaryTimeout', async () => {
    const { env, client } = await start(
      {
        adapters: [{ name: 'hci0' }, { name: 'hci1' }],
        devices: [
          bms('AA:BB:CC:DD:EE:01', { inRange: ['hci0'], rssiByAdapter: { hci0: -45 } }),
          bms('AA:BB:CC:DD:EE:02', { inRange: ['hci1'] }),
        ],
      },
      { timing: { temporaryTimeoutMs: 150 } },
    );
    await client.call('/org/bluez/hci0', A1, 'StartDiscovery');
    await eventually('device appears', () => device(env) !== undefined);
    expect(await client.value(dev0, D1, 'RSSI')).toBe(-45);
    expect(env.sim.state().adapters[0]?.devices.map((d) => d.address)).toEqual([MAC]);
    const added = client.log.find((e) => e.member === 'InterfacesAdded' && e.body[0] === dev0);
    const props = (added?.body[1] as Record<string, Record<string, dbus.Variant>>)[D1];
    expect(props?.RSSI?.value).toBe(-45);

    env.sim.setInRange(MAC, false);
    await eventually('temporary device expired', () => device(env) === undefined, 3000);
    await client.call('/org/bluez/hci0', A1, 'StopDiscovery');
  });

  it('applies SetDiscoveryFilter: UUIDs and RSSI thresholds decide which new devices are reported', async () => {
    const { env, client } = await start({
      adapters: [{ name: 'hci0' }],
      devices: [
        bms('AA:BB:CC:DD:EE:01', { rssi: -50 }),
        bms('AA:BB:CC:DD:EE:02', { rssi: -90 }),
        bms('AA:BB:CC:DD:EE:03', { rssi: -40, uuids: [] }),
      ],
    });
    const filter = {
      UUIDs: new Variant('as', ['0000180F-0000-1000-8000-00805F9B34FB']),
      RSSI: new Variant('n', -70),
      Transport: new Variant('s', 'le'),
    };
    expect((await client.call('/org/bluez/hci0', A1, 'SetDiscoveryFilter', 'a{sv}', [filter])).ok).toBe(true);
    expect((await client.call('/org/bluez/hci0', A1, 'StartDiscovery')).ok).toBe(true);
    await eventually('the matching device appears', () => env.sim.state().adapters[0]?.devices.length === 1);
    await new Promise((r) => setTimeout(r, 50)); // several advertising intervals (10 ms each)
    expect(env.sim.state().adapters[0]?.devices.map((d) => d.address)).toEqual(['AA:BB:CC:DD:EE:01']);
    const bad = { Colour: new Variant('s', 'blue') };
    expect(await client.call('/org/bluez/hci0', A1, 'SetDiscoveryFilter', 'a{sv}', [bad])).toMatchObject({
      errorName: 'org.bluez.Error.InvalidArguments',
    });
  });

  it('Pair sets Paired and Bonded; a second Pair says AlreadyExists; agents register once', async () => {
    const { env, client } = await start(known());
    expect((await client.call(dev0, D1, 'Pair')).ok).toBe(true);
    expect(await client.value(dev0, D1, 'Paired')).toBe(true);
    expect(await client.value(dev0, D1, 'Bonded')).toBe(true);
    expect(device(env)).toMatchObject({ paired: true, temporary: false });
    expect(await client.call(dev0, D1, 'Pair')).toMatchObject({ errorName: 'org.bluez.Error.AlreadyExists' });
    const agent = ['/test/agent', 'NoInputNoOutput'];
    expect(
      (await client.call('/org/bluez', 'org.bluez.AgentManager1', 'RegisterAgent', 'os', agent)).ok,
    ).toBe(true);
    expect(
      await client.call('/org/bluez', 'org.bluez.AgentManager1', 'RegisterAgent', 'os', agent),
    ).toMatchObject({
      errorName: 'org.bluez.Error.AlreadyExists',
    });
    expect(
      (await client.call('/org/bluez', 'org.bluez.AgentManager1', 'UnregisterAgent', 'o', ['/test/agent']))
        .ok,
    ).toBe(true);
  });

  it('a stopped discovery invalidates RSSI', async () => {
    const { env, client } = await start({ adapters: [{ name: 'hci0' }], devices: [bms(MAC)] });
    await client.call('/org/bluez/hci0', A1, 'StartDiscovery');
    await eventually('device appears', () => device(env)?.rssi !== undefined);
    await client.call('/org/bluez/hci0', A1, 'StopDiscovery');
    expect(client.lines().some((l) => l === 'signal Device1 RSSI=<invalidated> TxPower=<invalidated>')).toBe(
      true,
    );
    expect(await client.get(dev0, D1, 'RSSI')).toMatchObject({ ok: false });
  });
});

describe('bluetoothd restart', () => {
  it('releases org.bluez (pending calls get NoReply), then a fresh tree keeps only devices its storage knows', async () => {
    const { env, sim, client } = await start(
      {
        adapters: [{ name: 'hci0' }],
        devices: [bms(MAC, { knownOn: ['hci0'] }), bms('AA:BB:CC:DD:EE:02')],
      },
      { timing: { connectMs: 5000 } },
    );
    await client.call('/org/bluez/hci0', A1, 'StartDiscovery');
    await eventually('discovered', () => env.sim.state().adapters[0]?.devices.length === 2);
    const before = sim.state().busName;
    const pending = client.call(dev0, D1, 'Connect');
    await eventually('connecting', () => device(env)?.connecting === true);
    await sim.restartDaemon({ downMs: 20 });
    expect(await pending).toMatchObject({ ok: false, errorName: 'org.freedesktop.DBus.Error.NoReply' });
    const after = sim.state();
    expect(after.busName).not.toBe(before);
    expect(after.adapters[0]).toMatchObject({ discovering: false, discoveryClients: [] });
    expect(after.adapters[0]?.devices.map((d) => d.address)).toEqual([MAC]);
    expect(after.objects).toEqual(['/org/bluez', '/org/bluez/hci0', dev0]);
  });
});

describe('bluetoothd restart signals', () => {
  it('a clean exit signals the shutdown before the name goes: links drop, adapters power off, objects are removed; the adapters come back powered', async () => {
    const { env, sim, client } = await start(known());
    await client.call(dev0, D1, 'Connect');
    await eventually('resolved', () => device(env)?.servicesResolved === true);
    await eventually('client saw ServicesResolved', () =>
      client.lines().includes('signal Device1 ServicesResolved=true'),
    );
    client.log.length = 0;
    await sim.restartDaemon({ downMs: 20 });
    await eventually('client saw the new hci0', () =>
      client.lines().includes('signal InterfacesAdded /org/bluez/hci0'),
    );
    const lines = client.lines();
    const at = (line: string) => {
      const i = lines.indexOf(line);
      expect(i, line).toBeGreaterThanOrEqual(0);
      return i;
    };
    const order = [
      'signal Device1 Connected=false',
      'signal Device1 ServicesResolved=false',
      'signal Adapter1 Powered=false Discovering=false PowerState="off"',
      `signal InterfacesRemoved ${dev0}`,
      'signal InterfacesRemoved /org/bluez/hci0',
      'signal InterfacesAdded /org/bluez/hci0',
      `signal InterfacesAdded ${dev0}`,
    ].map(at);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(lines.findIndex((l) => l.startsWith(`signal InterfacesRemoved ${dev0}/service`))).toBeLessThan(
      at(`signal InterfacesRemoved ${dev0}`),
    );
    expect(sim.state().adapters.map((a) => a.powered)).toEqual([true, true]);
    expect(await client.value('/org/bluez/hci0', A1, 'Powered')).toBe(true);
    expect(device(env)).toMatchObject({ connected: false, paired: false });
  });

  it('a crash (crash: true) releases the name without any of those signals', async () => {
    const { env, sim, client } = await start(known());
    await client.call(dev0, D1, 'Connect');
    await eventually('resolved', () => device(env)?.servicesResolved === true);
    client.log.length = 0;
    sim.inject({ kind: 'restart-daemon', target: { daemon: true }, downMs: 20, crash: true });
    await eventually('client saw the new hci0', () =>
      client.lines().includes('signal InterfacesAdded /org/bluez/hci0'),
    );
    expect(client.lines().filter((l) => l.includes('InterfacesRemoved') || l.includes('=false'))).toEqual([]);
    expect(() =>
      sim.inject({ kind: 'restart-daemon', target: { daemon: true }, crash: 'yes' } as never),
    ).toThrow(/fault\.crash must be a boolean/);
  });
});

describe('driving the world from code', () => {
  it('adapters and devices added and removed at run time are announced like hot-plug and cache changes', async () => {
    const { env, sim, client } = await start({ adapters: [{ name: 'hci0' }] });
    sim.addAdapter({ name: 'hci1', powered: false });
    await eventually('hci1 announced', () =>
      client.lines().includes('signal InterfacesAdded /org/bluez/hci1'),
    );
    expect(await client.value('/org/bluez/hci1', A1, 'Powered')).toBe(false);
    sim.addDevice(bms('AA:BB:CC:DD:EE:09', { knownOn: ['hci0'] }));
    await eventually('cached device announced', () =>
      client.lines().includes(`signal InterfacesAdded ${DEV('hci0', 'AA:BB:CC:DD:EE:09')}`),
    );
    expect((await client.call(DEV('hci0', 'AA:BB:CC:DD:EE:09'), D1, 'Connect')).ok).toBe(true);
    sim.removeDevice('AA:BB:CC:DD:EE:09'); // switched off for good: the link drops, the cached object stays
    await eventually('link dropped', () => env.sim.state().adapters[0]?.devices[0]?.connected === false);
    expect(sim.state().objects).toContain(DEV('hci0', 'AA:BB:CC:DD:EE:09'));
    sim.removeAdapter('hci1');
    await eventually('hci1 removed', () =>
      client.lines().includes('signal InterfacesRemoved /org/bluez/hci1'),
    );
    expect(() => sim.addAdapter({ name: 'usb0' } as never)).toThrow(/adapter\.name must look like hci0/);
    expect(() => sim.addDevice({ address: 'AA:BB' })).toThrow(/device\.address must be a MAC address/);
    expect(() => sim.setInRange('11:22:33:44:55:66', true)).toThrow(RangeError);
  });
});

describe('cleanup', () => {
  it('stop() leaves no timer, socket or child process of the simulator behind', async () => {
    const count = () => {
      const info = process.getActiveResourcesInfo();
      return {
        timers: info.filter((r) => r === 'Timeout').length,
        handles: info.filter((r) => r !== 'Timeout').length,
      };
    };
    await new Promise((r) => setTimeout(r, 20)); // earlier tests' sockets finish closing
    const before = count();
    const env = await startSimulatedBluez({
      latencyScale: 0.01,
      scenario: {
        adapters: [{ name: 'hci0' }],
        devices: [
          bms(MAC, { knownOn: ['hci0'], services: [{ uuid: BATTERY_SERVICE, characteristics: [tick] }] }),
        ],
      },
    });
    const client = await RawClient.connect(env.address);
    await client.call('/org/bluez/hci0', A1, 'StartDiscovery');
    await client.call(dev0, D1, 'Connect');
    await eventually('resolved', () => device(env)?.servicesResolved === true);
    await client.call(`${dev0}/service0010/char0011`, 'org.bluez.GattCharacteristic1', 'StartNotify');
    await client.call(dev0, D1, 'Disconnect', '', [], { timeoutMs: 50 }).catch(() => undefined); // left pending
    await env.stop(); // with the discovery session, the notify ticker and a Disconnect still running
    client.close();
    await new Promise((r) => setTimeout(r, 20)); // let closed sockets report
    const after = count();
    expect(after.timers).toBeLessThanOrEqual(before.timers);
    expect(after.handles).toBeLessThanOrEqual(before.handles);
  });
});

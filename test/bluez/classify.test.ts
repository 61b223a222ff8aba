/**
 * Every row of the SPEC §5 table, driven through the simulator so that the error names and texts
 * are the ones bluetoothd (as simulated) really produces — not hand-made error objects.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startSimulatedBluez } from '../../src/testing/index.js';
import type { BluezBehaviourOption, Scenario } from '../../src/testing/index.js';
import {
  AbortedError,
  AdapterNotReadyError,
  BluezUnavailableError,
  BusLostError,
  DBusCallError,
  DBusTimeoutError,
  DeviceNotFoundError,
  InProgressError,
  NoReplyError,
  NotConnectedError,
  classifyError,
  openBluez,
} from '../../src/bluez/index.js';
import type { BluezClient, BluezError } from '../../src/bluez/index.js';

type Env = Awaited<ReturnType<typeof startSimulatedBluez>>;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const DEV = 'AA:BB:CC:00:00:01';
const DEV2 = 'AA:BB:CC:00:00:02';
const DEV3 = 'AA:BB:CC:00:00:03';

const gattDevice = (address: string) => ({
  address,
  knownOn: ['hci0'],
  services: [
    {
      uuid: '0000180f-0000-1000-8000-00805f9b34fb',
      characteristics: [
        { uuid: '00002a19-0000-1000-8000-00805f9b34fb', flags: ['read', 'notify'], value: [99] },
      ],
    },
  ],
});

async function setup(
  scenario: Partial<Scenario> = {},
  behaviour?: BluezBehaviourOption,
): Promise<{ env: Env; client: BluezClient }> {
  const env = await startSimulatedBluez({
    scenario: { adapters: [{ name: 'hci0' }], devices: [gattDevice(DEV)], ...scenario },
    latencyScale: 0.01,
    ...(behaviour === undefined ? {} : { behaviour }),
  });
  cleanups.push(() => env.stop());
  const client = await openBluez({ busAddress: env.address });
  cleanups.push(() => client.close());
  return { env, client };
}

async function connectError(client: BluezClient, address = DEV, timeoutMs = 15_000): Promise<BluezError> {
  const err = await client.connect('hci0', address, { timeoutMs }).then(
    () => {
      throw new Error('connect unexpectedly succeeded');
    },
    (e: unknown) => e,
  );
  return err as BluezError;
}

describe('SPEC §5 classification with the errors the simulator produces', () => {
  it('inProgress: a second Connect while one is pending → org.bluez.Error.InProgress', async () => {
    const { env, client } = await setup();
    env.sim.inject({ kind: 'connect-latency', target: { device: DEV }, ms: 60_000 });
    const first = client.connect('hci0', DEV, { timeoutMs: 60_000 }).catch((e: unknown) => e);
    const err = await connectError(client);
    expect(err).toBeInstanceOf(InProgressError);
    expect(err.dbusName).toBe('org.bluez.Error.InProgress');
    expect(classifyError(err)).toMatchObject({ class: 'inProgress', backoffMs: 250 });
    // The stale pending connect is cancelled by Disconnect (what the machine does for this class).
    await client.disconnect('hci0', DEV, { timeoutMs: 15_000 });
    expect(classifyError(await first).class).toBe('aborted'); // br-connection-canceled
  });

  it('inProgress: the stale-in-progress fault, and injected InProgress by name', async () => {
    const { env, client } = await setup();
    const fault = env.sim.inject({ kind: 'stale-in-progress', target: { device: DEV } });
    expect(classifyError(await connectError(client)).class).toBe('inProgress');
    fault.clear();
    env.sim.inject({
      kind: 'fail-connect',
      target: { device: DEV },
      count: 1,
      errorName: 'org.bluez.Error.InProgress',
      message: 'In Progress',
    });
    expect(classifyError(await connectError(client)).class).toBe('inProgress');
  });

  it('aborted (transient RF): le-connection-abort-by-local, br-connection-canceled, Software caused connection abort', async () => {
    const { env, client } = await setup();
    env.sim.inject({ kind: 'rf-abort', target: { device: DEV }, count: 1 });
    const rf = await connectError(client);
    expect(rf).toBeInstanceOf(AbortedError);
    expect(rf.dbusName).toBe('org.bluez.Error.Failed');
    expect(classifyError(rf)).toMatchObject({ class: 'aborted', backoffMs: 250 });
    for (const message of ['br-connection-canceled', 'Software caused connection abort']) {
      env.sim.inject({
        kind: 'fail-connect',
        target: { device: DEV },
        count: 1,
        errorName: 'org.bluez.Error.Failed',
        message,
      });
      expect(classifyError(await connectError(client)).class).toBe('aborted');
    }
  });

  it('outOfSlots: a saturated adapter (le-connection-abort-by-local with every slot taken) and the slot texts', async () => {
    const { env, client } = await setup({
      adapters: [{ name: 'hci0', slotLimit: 2 }],
      devices: [gattDevice(DEV), gattDevice(DEV2), gattDevice(DEV3)],
    });
    await client.connect('hci0', DEV, { timeoutMs: 15_000 });
    await client.connect('hci0', DEV2, { timeoutMs: 15_000 });
    const err = await connectError(client, DEV3);
    expect(err.dbusName).toBe('org.bluez.Error.Failed');
    expect(err.linksOnAdapter).toBe(2);
    // Without the slot limit bluetoothd's text is indistinguishable from an RF abort…
    expect(classifyError(err).class).toBe('aborted');
    // …with it, the full controller is recognised.
    expect(classifyError(err, { slotsPerAdapter: 2 })).toMatchObject({
      class: 'outOfSlots',
      backoffMs: 4000,
    });
    for (const message of [
      'No available connection slot',
      'Connection Rejected due to Limited Resources (0x0d)',
    ]) {
      env.sim.inject({
        kind: 'fail-connect',
        target: { device: DEV3 },
        count: 1,
        errorName: 'org.bluez.Error.Failed',
        message,
      });
      expect(classifyError(await connectError(client, DEV3)).class).toBe('outOfSlots');
    }
  });

  it('notFound: Connect on an object BlueZ does not have → UnknownObject; DoesNotExist by name', async () => {
    const { env, client } = await setup();
    const err = await connectError(client, 'AA:BB:CC:00:00:99');
    expect(err).toBeInstanceOf(DeviceNotFoundError);
    expect(err.dbusName).toBe('org.freedesktop.DBus.Error.UnknownObject');
    expect(classifyError(err)).toMatchObject({ class: 'notFound', backoffMs: 4000 });
    env.sim.inject({
      kind: 'fail-connect',
      target: { device: DEV },
      count: 1,
      errorName: 'org.bluez.Error.DoesNotExist',
      message: 'Does Not Exist',
    });
    expect(classifyError(await connectError(client)).class).toBe('notFound');
  });

  // The BlueZ answers NotReady; bluetoothd 5.66 answers Failed "Input/output error" and
  // only the adapter's power in the mirror tells it apart from any other failure.
  for (const [behaviour, dbusName] of [
    [undefined, 'org.bluez.Error.NotReady'],
    ['bluez-5.66', 'org.bluez.Error.Failed'],
  ] as const) {
    it(`notReady: Connect on a powered-off adapter (${behaviour ?? 'default'} → ${dbusName})`, async () => {
      const { client } = await setup({}, behaviour);
      await client.setPowered('hci0', false, { timeoutMs: 15_000 });
      const err = await connectError(client);
      expect(err).toBeInstanceOf(AdapterNotReadyError);
      expect(err.dbusName).toBe(dbusName);
      expect(err.adapter).toBe('hci0');
      expect(classifyError(err)).toMatchObject({ class: 'notReady', backoffMs: 1000 });
    });
  }

  it('notReady: bluez-5.66, the adapter powered off underneath bluetoothd (discovered device kept) → Failed "Input/output error" is notReady', async () => {
    const { env, client } = await setup({ devices: [{ ...gattDevice(DEV), knownOn: [] }] }, 'bluez-5.66');
    await client.startDiscovery('hci0', { timeoutMs: 15_000 });
    await client.mirror.waitFor((m) => m.device('hci0', DEV), { timeoutMs: 15_000 });
    await client.stopDiscovery('hci0', { timeoutMs: 15_000 });
    env.sim.inject({ kind: 'power-off', target: { adapter: 'hci0' } });
    await client.mirror.waitFor((m) => m.adapter('hci0')?.powered === false, { timeoutMs: 15_000 });
    const err = await connectError(client);
    expect(err).toBeInstanceOf(AdapterNotReadyError);
    expect(err.message).toMatch(/Input\/output error/);
    expect(classifyError(err).class).toBe('notReady');
    // The raw error alone is unclassified; the adapter's state decides.
    expect(classifyError(err.cause).class).toBe('other');
    expect(classifyError(err.cause, { adapterPowered: false }).class).toBe('notReady');
    expect(classifyError(err.cause, { adapterPowered: true }).class).toBe('other');
  });

  it('noReply / timeout: a hung Connect hits our deadline; NoReply by name', async () => {
    const { env, client } = await setup();
    env.sim.inject({
      kind: 'hang',
      target: { device: DEV },
      interface: 'org.bluez.Device1',
      member: 'Connect',
      count: 1,
    });
    const err = await connectError(client, DEV, 300);
    expect(err).toBeInstanceOf(DBusTimeoutError);
    expect((err as DBusTimeoutError).member).toBe('org.bluez.Device1.Connect');
    expect((err as DBusTimeoutError).path).toBe('/org/bluez/hci0/dev_AA_BB_CC_00_00_01');
    expect(classifyError(err)).toMatchObject({ class: 'noReply', backoffMs: 250 });
    env.sim.inject({
      kind: 'fail-connect',
      target: { device: DEV },
      count: 1,
      errorName: 'org.freedesktop.DBus.Error.NoReply',
      message: 'Did not receive a reply',
    });
    const noReply = await connectError(client);
    expect(noReply).toBeInstanceOf(NoReplyError);
    expect(classifyError(noReply).class).toBe('noReply');
  });

  it('bluezGone: a call while bluetoothd is down → ServiceUnknown from the bus daemon', async () => {
    const { env, client } = await setup();
    const down = client.mirror.waitFor((m) => m.owner === undefined, { timeoutMs: 15_000 });
    const restart = env.sim.restartDaemon({ downMs: 2000 });
    await down;
    const err = await connectError(client);
    expect(err).toBeInstanceOf(BluezUnavailableError);
    expect(err.dbusName).toBe('org.freedesktop.DBus.Error.ServiceUnknown');
    expect(classifyError(err)).toMatchObject({ class: 'bluezGone', action: 'waitForBluez' });
    await restart;
    await client.waitForBluez({ timeoutMs: 15_000 });
  });

  it('bluezGone: killing the dbus-daemon rejects a pending call with BusLostError', async () => {
    const { env, client } = await setup();
    env.sim.inject({
      kind: 'hang',
      target: { device: DEV },
      interface: 'org.bluez.Device1',
      member: 'Connect',
    });
    const pending = client.connect('hci0', DEV, { timeoutMs: 60_000 }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 200));
    await env.bus.kill();
    const err = await pending;
    expect(err).toBeInstanceOf(BusLostError);
    expect(classifyError(err).class).toBe('bluezGone');
  });

  it('notConnected: a GATT read whose link drops mid-read → "Not connected"; NotConnected by name', async () => {
    const { env, client } = await setup({ timing: { gattMs: 500 } });
    await client.connect('hci0', DEV, { timeoutMs: 15_000, waitServicesResolved: true });
    const chr = client.gattServices('hci0', DEV)[0]?.characteristics[0];
    expect(chr).toBeDefined();
    const read = client.readCharacteristic(chr?.path ?? '', { timeoutMs: 15_000 }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 100));
    env.sim.inject({ kind: 'link-drop', target: { device: DEV } });
    const err = (await read) as BluezError;
    expect(err).toBeInstanceOf(NotConnectedError);
    expect(err.dbusName).toBe('org.bluez.Error.Failed');
    expect(classifyError(err)).toMatchObject({
      class: 'notConnected',
      action: 'treatAsPhantom',
      backoffMs: 0,
    });

    env.sim.inject({
      kind: 'fail-connect',
      target: { device: DEV },
      count: 1,
      errorName: 'org.bluez.Error.NotConnected',
      message: 'Not Connected',
    });
    const byName = await connectError(client);
    expect(byName).toBeInstanceOf(NotConnectedError);
    expect(classifyError(byName).class).toBe('notConnected');
  });

  it('other: anything else counts as a connect error with a short backoff', async () => {
    const { env, client } = await setup();
    env.sim.inject({
      kind: 'fail-connect',
      target: { device: DEV },
      count: 1,
      errorName: 'org.bluez.Error.Failed',
      message: 'Input/output error',
    });
    const err = await connectError(client);
    expect(err).toBeInstanceOf(DBusCallError);
    expect(err.dbusName).toBe('org.bluez.Error.Failed');
    expect(classifyError(err)).toMatchObject({ class: 'other', backoffMs: 100, action: 'retry' });
  });
});

/**
 * `bluez-cm demo --node-ble`: the simulator with plain, unmodified node-ble and no connection
 * manager. Starts the embedded BlueZ simulator on a private bus, drives one simulated battery
 * monitor (discover, connect, read, write, notifications, a remote link loss), prints what
 * happened and stops everything it started. No Bluetooth hardware and no system bus are touched.
 */
import { createBluetooth } from 'node-ble';
import { performance } from 'node:perf_hooks';
import { startSimulatedBluez, type Scenario, type SimulatedBluez } from '../testing/index.js';

const BMS = 'C8:47:8C:00:00:01';
const BATTERY_SERVICE = '0000180f-0000-1000-8000-00805f9b34fb';
const BATTERY_LEVEL = '00002a19-0000-1000-8000-00805f9b34fb';
const BMS_SERVICE = '0000ff00-0000-1000-8000-00805f9b34fb';
const BMS_NOTIFY = '0000ff01-0000-1000-8000-00805f9b34fb';
const BMS_WRITE = '0000ff02-0000-1000-8000-00805f9b34fb';

const SCENARIO: Scenario = {
  adapters: [{ name: 'hci0' }, { name: 'hci1' }],
  devices: [
    {
      address: BMS,
      name: 'demo-bms',
      rssi: -61,
      uuids: [BMS_SERVICE],
      services: [
        {
          uuid: BATTERY_SERVICE,
          characteristics: [{ uuid: BATTERY_LEVEL, flags: ['read', 'notify'], value: [87] }],
        },
        {
          uuid: BMS_SERVICE,
          characteristics: [
            { uuid: BMS_NOTIFY, flags: ['notify'], value: [0xdd, 0x03, 0x00], notifyIntervalMs: 150 },
            { uuid: BMS_WRITE, flags: ['write', 'write-without-response'] },
          ],
        },
      ],
    },
  ],
  // One RF abort on the first connect, as gateways see daily; the demo retries.
  faults: [{ kind: 'rf-abort', target: { device: BMS }, count: 1, linkUpMs: 20 }],
};

const hex = (b: Buffer | number[]) => [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');

class Deadline extends Error {}

/** Rejects when `ms` passes, so no step of the demo can hang (node-ble has no timeouts). */
function within<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Deadline(`${what} did not finish within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

function waitFor<T>(subscribe: (done: (v: T) => void) => void): Promise<T> {
  return new Promise((resolve) => subscribe(resolve));
}

/** Runs the node-ble walkthrough; resolves with the exit code. */
export async function runNodeBleWalkthrough(latencyScale: number): Promise<number> {
  const t0 = performance.now();
  const say = (line: string) =>
    process.stdout.write(`[${((performance.now() - t0) / 1000).toFixed(2).padStart(6)}s] ${line}\n`);

  let env: SimulatedBluez | undefined;
  let nb: ReturnType<typeof createBluetooth> | undefined;
  try {
    say('starting a private dbus-daemon and the BlueZ simulator (no Bluetooth hardware needed)');
    env = await startSimulatedBluez({ scenario: SCENARIO, latencyScale });
    say(`private bus ${env.address}`);
    // node-ble reads the variable when createBluetooth() runs; only this process sees it.
    process.env.DBUS_SYSTEM_BUS_ADDRESS = env.address;
    nb = createBluetooth();
    const { bluetooth } = nb;
    const step = <T>(what: string, p: Promise<T>) => within(what, 15_000, p);

    say(`node-ble sees adapters: ${(await step('adapters', bluetooth.adapters())).join(', ')}`);
    const adapter = await step('getAdapter', bluetooth.getAdapter('hci0'));
    await step('startDiscovery', adapter.startDiscovery());
    say('hci0: discovery started');
    const device = await step('waitDevice', adapter.waitDevice(BMS, 10_000, 50));
    say(`found ${await device.getName()} ${BMS}, RSSI ${await device.getRSSI()} dBm`);
    await step('stopDiscovery', adapter.stopDiscovery());

    // node-ble adds one more PropertiesChanged listener per connect() call, so
    // after a retry each change is reported twice; report changes, not events.
    let linkUp = false;
    device.on('connect', () => {
      if (!linkUp) say('event: connect (Connected=true)');
      linkUp = true;
    });
    device.on('disconnect', () => {
      if (linkUp) say('event: disconnect (Connected=false)');
      linkUp = false;
    });
    for (let attempt = 1; ; attempt++) {
      say(`connect attempt ${attempt}…`);
      try {
        await step('connect', device.connect());
        break;
      } catch (e) {
        const err = e as { type?: string; text?: string; message: string };
        say(`  failed: ${err.type ?? 'Error'} "${err.text ?? err.message}"`);
        if (attempt >= 3) throw e;
      }
    }
    const gatt = await step('gatt (waits for ServicesResolved)', device.gatt());
    say(`services resolved: ${(await gatt.services()).join(', ')}`);

    const level = await (await gatt.getPrimaryService(BATTERY_SERVICE)).getCharacteristic(BATTERY_LEVEL);
    say(`read battery level: ${(await step('readValue', level.readValue()))[0]} %`);

    const bmsService = await gatt.getPrimaryService(BMS_SERVICE);
    const request = [0xdd, 0xa5, 0x03, 0x00, 0xff, 0xfd, 0x77];
    await step(
      'writeValue',
      (await bmsService.getCharacteristic(BMS_WRITE)).writeValue(Buffer.from(request)),
    );
    say(
      `wrote ${hex(request)} (the BMS "basic info" request); the peripheral received ${env.sim.gattWrites.length} write(s)`,
    );

    const notifier = await bmsService.getCharacteristic(BMS_NOTIFY);
    const three = waitFor<void>((done) => {
      let n = 0;
      notifier.on('valuechanged', (buf: Buffer) => {
        n += 1;
        say(`notification ${n}: ${hex(buf)}`);
        if (n === 3) done();
      });
    });
    await step('startNotifications', notifier.startNotifications());
    await step('three notifications', three);
    await step('stopNotifications', notifier.stopNotifications());

    say('simulating a remote link loss (the BMS walks out of range)…');
    const lost = waitFor<void>((done) => device.once('disconnect', () => done()));
    env.sim.dropLink(BMS);
    await step('disconnect event', lost);
    const calls = env.sim.calls.length;
    say(`done: the simulator answered ${calls} D-Bus calls`);
    return 0;
  } catch (e) {
    process.stderr.write(`bluez-cm demo: ${(e as Error).message}\n`);
    return 1;
  } finally {
    nb?.destroy();
    await env?.stop();
    say('stopped the simulator and the private bus; nothing left running');
  }
}

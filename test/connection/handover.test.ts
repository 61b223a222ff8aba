/**
 * Handing the connection over: once the actor is `connected`, establishConnection resolves without
 * another D-Bus round trip. node-ble's device and GATT objects are built from the mirror
 * (src/bluez/node-ble-view.ts), not by node-ble's introspection of every object.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { establishConnection, type ManagedConnection } from '../../src/connection/establish.js';
import { topLevelState } from '../../src/machines/state-trail.js';
import {
  BATTERY_LEVEL,
  BATTERY_SERVICE,
  DEVICE,
  bms,
  eventually,
  scenarioOptions,
  startWorld,
  type World,
} from './harness.js';

const LATE_SERVICE = '0000feed-0000-1000-8000-00805f9b34fb';
const LATE_CHAR = '0000beef-0000-1000-8000-00805f9b34fb';

let world: World | undefined;
const open: ManagedConnection[] = [];

afterEach(async () => {
  for (const c of open.splice(0)) await c.disconnect();
  await world?.stop();
  world = undefined;
});

describe('establishConnection hands the connection over without round trips', () => {
  it('bluetoothd receives no call from the client between `connected` and the promise resolving', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    const w = world;
    const me = w.bluez.uniqueName;
    expect(me).toBeDefined();
    let callsAtConnected: number | undefined;
    const conn = await establishConnection(
      scenarioOptions(w, {
        inspect: (event) => {
          if (
            callsAtConnected === undefined &&
            event.type === '@xstate.snapshot' &&
            'value' in event.snapshot &&
            topLevelState(event.snapshot.value as never) === 'connected'
          ) {
            callsAtConnected = w.env.sim.calls.length;
          }
        },
      }),
    );
    open.push(conn);
    expect(callsAtConnected).toBeDefined();
    const after = w.env.sim.calls.slice(callsAtConnected).filter((c) => c.sender === me);
    expect(after.map((c) => `${c.interface}.${c.member} ${c.path}`)).toEqual([]);
    // The GATT view answers from the mirror: listing services costs no call either.
    const before = w.env.sim.calls.length;
    expect(await conn.gatt.services()).toEqual([BATTERY_SERVICE]);
    const service = await conn.gatt.getPrimaryService(BATTERY_SERVICE);
    expect(await service.isPrimary()).toBe(true);
    expect(await service.characteristics()).toEqual([BATTERY_LEVEL]);
    expect(w.env.sim.calls.slice(before).filter((c) => c.sender === me)).toEqual([]);
  });

  it('the handed-over node-ble objects work: read, notify, device properties; unknown UUIDs reject like node-ble', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    const conn = await establishConnection(scenarioOptions(world));
    open.push(conn);
    expect(await conn.device.getAddress()).toBe(DEVICE);
    expect(await conn.device.isConnected()).toBe(true);
    const service = await conn.gatt.getPrimaryService(BATTERY_SERVICE.toUpperCase());
    const level = await service.getCharacteristic(BATTERY_LEVEL);
    // One object per characteristic: listeners stay where the caller put them.
    expect(await service.getCharacteristic(BATTERY_LEVEL)).toBe(level);
    expect([...(await level.readValue())]).toEqual([87]);
    const values: number[][] = [];
    level.on('valuechanged', (b: Buffer) => values.push([...b]));
    await level.startNotifications();
    world.env.sim.notify(DEVICE, BATTERY_LEVEL, [42]);
    await eventually('the notification', () => values.length === 1);
    expect(values).toEqual([[42]]);
    await level.stopNotifications();
    await expect(conn.gatt.getPrimaryService(LATE_SERVICE)).rejects.toThrow('Service not available');
    await expect(service.getCharacteristic(LATE_SERVICE)).rejects.toThrow('Characteristic not available');
  });

  it('a service the device adds after connecting (Service Changed) shows up in the same gatt object', async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    const conn = await establishConnection(scenarioOptions(world));
    open.push(conn);
    world.env.sim.addService(DEVICE, {
      uuid: LATE_SERVICE,
      characteristics: [{ uuid: LATE_CHAR, flags: ['read'], value: [7] }],
    });
    const gatt = conn.gatt;
    // bluetoothd exports the new service and its characteristic one object at a time.
    await eventually('the new service and its characteristic in the mirror', () =>
      world!.bluez
        .gattServices('hci0', DEVICE)
        .some((s) => s.uuid === LATE_SERVICE && s.characteristics.some((c) => c.uuid === LATE_CHAR)),
    );
    expect(await gatt.services()).toContain(LATE_SERVICE);
    const late = await (await gatt.getPrimaryService(LATE_SERVICE)).getCharacteristic(LATE_CHAR);
    expect([...(await late.readValue())]).toEqual([7]);
  });
});

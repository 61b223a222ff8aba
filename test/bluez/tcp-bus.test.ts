/**
 * A BlueZ whose bus is reached over TCP (a VM's, a container's or a remote gateway's): the private
 * dbus-daemon listens on a unix socket (EXTERNAL, the simulator's side) and on 127.0.0.1 with
 * ANONYMOUS auth, as the real-BlueZ tier's guest bus does. dbus-next's own default mechanism list
 * never gets past DBUS_COOKIE_SHA1 on such a bus.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { acquireBus, defaultAuthMethods } from '../../src/bluez/bus.js';
import { openBluez } from '../../src/bluez/client.js';
import { BusLostError } from '../../src/bluez/errors.js';
import { establishConnection } from '../../src/connection/establish.js';
import { startPrivateBus, startSimulatedBluez, type SimulatedBluez } from '../../src/testing/index.js';
import { BATTERY_LEVEL, DEVICE, bms } from '../connection/harness.js';

let env: SimulatedBluez;
let tcp: string;

beforeAll(async () => {
  env = await startSimulatedBluez({
    latencyScale: 0.01,
    bus: { tcp: true },
    scenario: { adapters: [{ name: 'hci0' }], devices: [bms(['hci0'])] },
  });
  const address = env.bus.tcpAddress;
  if (address === undefined) throw new Error('the private bus did not report a TCP address');
  tcp = address;
});

afterAll(async () => {
  await env.stop();
});

const savedEnv = process.env.DBUS_SYSTEM_BUS_ADDRESS;
afterEach(() => {
  if (savedEnv === undefined) delete process.env.DBUS_SYSTEM_BUS_ADDRESS;
  else process.env.DBUS_SYSTEM_BUS_ADDRESS = savedEnv;
});

describe('a tcp: bus address', () => {
  it('is reported by the private bus as tcp:host=127.0.0.1,port=N', () => {
    expect(tcp).toMatch(/^tcp:host=127\.0\.0\.1,port=\d+$/);
  });

  it('defaults to ANONYMOUS for tcp: and to EXTERNAL first for unix:', () => {
    expect(defaultAuthMethods(tcp)).toEqual(['ANONYMOUS']);
    expect(defaultAuthMethods(env.address)[0]).toBe('EXTERNAL');
  });

  it('openBluez on a tcp: address, with no auth option, sees the simulated adapter', async () => {
    const bluez = await openBluez({ busAddress: tcp, openTimeoutMs: 5000 });
    try {
      expect(bluez.busAddress).toBe(tcp);
      expect(bluez.adapters().map((a) => a.name)).toEqual(['hci0']);
    } finally {
      await bluez.close();
    }
  });

  it('DBUS_SYSTEM_BUS_ADDRESS=tcp:… is enough for openBluez()', async () => {
    process.env.DBUS_SYSTEM_BUS_ADDRESS = tcp;
    const bluez = await openBluez({ openTimeoutMs: 5000 });
    try {
      expect(bluez.busAddress).toBe(tcp);
      expect(bluez.mirror.bluezReady).toBe(true);
    } finally {
      await bluez.close();
    }
  });

  it('an explicit authMethods is what is tried: EXTERNAL alone cannot open a TCP bus', async () => {
    const err = await openBluez({ busAddress: tcp, authMethods: ['EXTERNAL'], openTimeoutMs: 1500 }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BusLostError);
  });

  it('on a unix bus that offers EXTERNAL only, an explicit ANONYMOUS is refused and the default connects', async () => {
    const plain = await startPrivateBus();
    try {
      const err = await openBluez({
        busAddress: plain.address,
        authMethods: ['ANONYMOUS'],
        openTimeoutMs: 1500,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BusLostError);
      const bus = acquireBus(plain.address);
      try {
        await bus.ready({ timeoutMs: 5000 });
        expect(bus.authMethods[0]).toBe('EXTERNAL');
      } finally {
        await bus.release();
      }
    } finally {
      await plain.stop();
    }
  });

  it('connections are shared per address and mechanism list', async () => {
    const a = acquireBus(tcp);
    const b = acquireBus(tcp, ['ANONYMOUS']);
    const c = acquireBus(tcp, ['ANONYMOUS', 'EXTERNAL']);
    try {
      expect(b).toBe(a);
      expect(c).not.toBe(a);
      expect(c.authMethods).toEqual(['ANONYMOUS', 'EXTERNAL']);
    } finally {
      await a.release();
      await b.release();
      await c.release();
    }
  });

  it('bad authMethods are refused before any I/O, naming the field', async () => {
    await expect(openBluez({ busAddress: tcp, authMethods: [] })).rejects.toThrow(RangeError);
    await expect(openBluez({ busAddress: tcp, authMethods: ['PLAIN' as 'ANONYMOUS'] })).rejects.toThrow(
      /authMethods: unknown mechanism "PLAIN"/,
    );
    await expect(openBluez({ busAddress: tcp, authMethods: ['ANONYMOUS', 'ANONYMOUS'] })).rejects.toThrow(
      /twice/,
    );
    await expect(
      openBluez({ busAddress: tcp, authMethods: 'ANONYMOUS' as unknown as ['ANONYMOUS'] }),
    ).rejects.toThrow(TypeError);
    await expect(
      establishConnection({ address: DEVICE, busAddress: tcp, authMethods: ['NOPE' as 'ANONYMOUS'] }),
    ).rejects.toThrow(RangeError);
  });

  it('establishConnection over TCP connects, reads and disconnects the device', async () => {
    const conn = await establishConnection({
      address: DEVICE,
      busAddress: tcp,
      attemptTimeoutMs: 10_000,
      overallTimeoutMs: 30_000,
    });
    try {
      const chr = await conn.gatt
        .getPrimaryService('0000180f-0000-1000-8000-00805f9b34fb')
        .then((s) => s.getCharacteristic(BATTERY_LEVEL));
      expect([...(await chr.readValue())]).toEqual([87]);
    } finally {
      await conn.disconnect();
    }
    expect(env.sim.state().adapters[0]?.devices.find((d) => d.address === DEVICE)?.connected).toBe(false);
  });
});

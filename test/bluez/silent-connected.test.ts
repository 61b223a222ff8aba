/**
 * bluetoothd 5.66 sometimes never signals Connected=true on an LE connect (its log says
 * "device_add_connection() … is already connected") while the property reads true. A library
 * that trusted the signal alone would see a link that is up as down: the phantom check and the
 * link watch would both be wrong. The simulator's `silent-connected` fault reproduces it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startSimulatedBluez } from '../../src/testing/index.js';
import { openBluez } from '../../src/bluez/index.js';
import type { BluezClient } from '../../src/bluez/index.js';

type Env = Awaited<ReturnType<typeof startSimulatedBluez>>;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const DEV = 'AA:BB:CC:00:00:21';
const PATH = '/org/bluez/hci0/dev_AA_BB_CC_00_00_21';
const D1 = 'org.bluez.Device1';

async function setup(): Promise<{ env: Env; client: BluezClient }> {
  const env = await startSimulatedBluez({
    behaviour: 'bluez-5.66',
    latencyScale: 0.01,
    scenario: {
      adapters: [{ name: 'hci0' }],
      devices: [
        {
          address: DEV,
          knownOn: ['hci0'],
          services: [
            {
              uuid: '0000180f-0000-1000-8000-00805f9b34fb',
              characteristics: [
                { uuid: '00002a19-0000-1000-8000-00805f9b34fb', flags: ['read'], value: [50] },
              ],
            },
          ],
        },
      ],
    },
  });
  cleanups.push(() => env.stop());
  const client = await openBluez({ busAddress: env.address });
  cleanups.push(() => client.close());
  return { env, client };
}

const connectedReads = (env: Env) =>
  env.sim.calls.filter((c) => c.path === PATH && c.member === 'Get' && c.interface.endsWith('Properties'))
    .length;

describe('Connected=true that bluetoothd never signals', () => {
  it('connect reads Connected back and corrects the mirror: no phantom, and the link watch sees the later drop', async () => {
    const { env, client } = await setup();
    env.sim.inject({ kind: 'silent-connected', target: { device: DEV }, count: 1 });
    await client.connect('hci0', DEV, { timeoutMs: 15_000, waitServicesResolved: true });
    expect(env.sim.state().adapters[0]?.devices[0]).toMatchObject({
      connected: true,
      servicesResolved: true,
    });
    expect(connectedReads(env)).toBe(1);
    expect(client.device('hci0', DEV)).toMatchObject({ connected: true, servicesResolved: true });
    expect(client.isPhantom('hci0', DEV)).toBe(false);

    const linkDown = client.mirror.waitFor((m) => m.device('hci0', DEV)?.connected === false, {
      timeoutMs: 15_000,
    });
    env.sim.dropLink(DEV);
    await linkDown;
    expect(client.mirror.pendingWaits).toBe(0);
  });

  it('a signalled Connected=true needs no read', async () => {
    const { env, client } = await setup();
    await client.connect('hci0', DEV, { timeoutMs: 15_000, waitServicesResolved: true });
    expect(client.device('hci0', DEV)?.connected).toBe(true);
    expect(connectedReads(env)).toBe(0);
  });

  it('a read never overrides a newer signal, a rebuilt tree, or an object the mirror does not have', async () => {
    const { client } = await setup();
    await client.connect('hci0', DEV, { timeoutMs: 15_000, waitServicesResolved: true });
    // Older than the signals that built the current state: ignored.
    expect(client.mirror.applyPropertyRead(PATH, D1, 'Connected', false, 0)).toBe(false);
    expect(client.device('hci0', DEV)?.connected).toBe(true);
    expect(client.mirror.applyPropertyRead(`${PATH}x`, D1, 'Connected', false, Number.MAX_SAFE_INTEGER)).toBe(
      false,
    );
    // Newer than everything: applied, with a change event for waiters.
    const seen = client.mirror.waitFor((m) => m.device('hci0', DEV)?.connected === false, {
      timeoutMs: 5_000,
    });
    expect(client.mirror.applyPropertyRead(PATH, D1, 'Connected', false, Number.MAX_SAFE_INTEGER)).toBe(true);
    await seen;
    // The same value again changes nothing.
    expect(client.mirror.applyPropertyRead(PATH, D1, 'Connected', false, Number.MAX_SAFE_INTEGER)).toBe(
      false,
    );
  });
});

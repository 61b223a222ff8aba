// Testing your own BLE app without hardware: the simulator owns org.bluez on a private
// dbus-daemon (Debian package `dbus`); inject the BlueZ failure your app must survive and assert
// what it did. Written with node:test; any test runner works the same way.
//
//   node --test test-with-simulator.js   (after compiling this file with tsc)
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { establishConnection, openBluez } from 'bluez-connection-manager';
import { startSimulatedBluez } from 'bluez-connection-manager/testing';

const BMS = 'C8:47:8C:00:00:01';

/** The app under test: connects its battery monitor and returns the adapter it used. */
async function connectBatteryMonitor(busAddress: string): Promise<string> {
  const bluez = await openBluez({ busAddress });
  try {
    const connection = await establishConnection({
      bluez,
      address: BMS,
      closeInactiveConnections: true, // the app may clear a phantom of its own device
      overallTimeoutMs: 30_000,
    });
    const adapter = connection.adapter;
    await connection.disconnect();
    return adapter;
  } finally {
    await bluez.close();
  }
}

test('the app connects its BMS although BlueZ holds a phantom link to it on hci0', async () => {
  const env = await startSimulatedBluez({
    latencyScale: 0.01,
    scenario: {
      adapters: [{ name: 'hci0' }],
      devices: [
        {
          address: BMS,
          name: 'JBD-BMS-01',
          knownOn: ['hci0'],
          services: [
            {
              uuid: '0000ff00-0000-1000-8000-00805f9b34fb',
              characteristics: [{ uuid: '0000ff01-0000-1000-8000-00805f9b34fb', flags: ['notify'] }],
            },
          ],
        },
      ],
    },
  });
  try {
    env.sim.inject({ kind: 'phantom', target: { device: BMS, adapter: 'hci0' } });
    assert.equal(await connectBatteryMonitor(env.address), 'hci0');
    // What BlueZ saw: the phantom was removed before the app's connect went through.
    const members = env.sim.calls.filter((c) => c.path.startsWith('/org/bluez/hci0')).map((c) => c.member);
    assert.ok(members.includes('RemoveDevice'), `RemoveDevice in ${members.join(', ')}`);
    assert.ok(members.lastIndexOf('Connect') > members.indexOf('RemoveDevice'));
    // And nothing is left connected once the app is done.
    const device = env.sim.state().adapters[0]?.devices.find((d) => d.address === BMS);
    assert.equal(device?.connected ?? false, false);
  } finally {
    await env.stop();
  }
});

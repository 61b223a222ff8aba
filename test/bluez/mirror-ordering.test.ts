/**
 * The one mirror property the simulator cannot provoke on demand: a signal written right behind
 * the GetManagedObjects reply (same socket read, same tick) must be applied, and one written just
 * before it must not be replayed over the newer snapshot. A hand-driven org.bluez makes the timing exact.
 */
import { afterEach, expect, it } from 'vitest';
import dbus from 'dbus-next';
import type { Message } from 'dbus-next';
import { startPrivateBus } from '../../src/testing/index.js';
import { openBluez } from '../../src/bluez/index.js';
import { rawConnection } from './helpers.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const DEV = '/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF';
const V = dbus.Variant;

function propertiesChanged(changed: Record<string, InstanceType<typeof V>>): Message {
  return dbus.Message.newSignal(DEV, 'org.freedesktop.DBus.Properties', 'PropertiesChanged', 'sa{sv}as', [
    'org.bluez.Device1',
    changed,
    [],
  ]);
}

it('a signal sent right after the GetManagedObjects reply is applied; one sent before it is not replayed', async () => {
  const daemon = await startPrivateBus();
  cleanups.push(() => daemon.stop());
  const fake = await rawConnection(daemon.address);
  cleanups.push(() => fake.disconnect());
  fake.addMethodHandler((msg: Message) => {
    if (msg.member !== 'GetManagedObjects') return false;
    // Before the reply: an older Alias that the snapshot already supersedes; replaying it after
    // the snapshot would bring the stale value back.
    fake.send(propertiesChanged({ Alias: new V('s', 'old alias') }));
    const tree = {
      '/org/bluez/hci0': {
        'org.bluez.Adapter1': { Address: new V('s', '00:11:22:33:44:55'), Powered: new V('b', true) },
      },
      [DEV]: {
        'org.bluez.Device1': {
          Address: new V('s', 'AA:BB:CC:DD:EE:FF'),
          Adapter: new V('o', '/org/bluez/hci0'),
          Connected: new V('b', false),
          Alias: new V('s', 'current alias'),
        },
      },
    };
    fake.send(dbus.Message.newMethodReturn(msg, 'a{oa{sa{sv}}}', [tree]));
    // Same tick, right behind the reply: the link came up.
    fake.send(propertiesChanged({ Connected: new V('b', true) }));
    return true;
  });
  await fake.requestName('org.bluez', 0);

  const client = await openBluez({ busAddress: daemon.address });
  cleanups.push(() => client.close());
  const dev = await client.mirror.waitFor(
    (m) => m.device('hci0', 'AA:BB:CC:DD:EE:FF')?.connected && m.device('hci0', 'AA:BB:CC:DD:EE:FF'),
    {
      timeoutMs: 5000,
      description: 'the late Connected=true applied',
    },
  );
  expect(dev.alias).toBe('current alias');
});

/**
 * The simulated side of `npm run bench:scale`, in its own process so that the library's process
 * measures only the library (heap, event-loop delay, CPU): a private dbus-daemon, the BlueZ
 * simulator with `N` devices on 8 adapters (latency scale 0.01), and a monitor connection that
 * counts error replies by name (LimitsExceeded among them). Talks to its parent over IPC:
 * `{ cmd: 'stats', name }` → the daemon's Debug.Stats for that connection plus the simulator's
 * link count; `{ cmd: 'stop' }` → stops everything and exits.
 *
 * The private bus runs with dbus-daemon's built-in limits, which are the stock system bus's:
 * /usr/share/dbus-1/system.conf (dbus 1.14) sets none of them and lists the compiled-in defaults
 * as comments (max_replies_per_connection 128, max_match_rules_per_connection 512,
 * max_connections_per_user 256, …); src/testing/private-bus.ts writes no <limit> either.
 */
import dbus from 'dbus-next';
import type { Message, MessageBus } from 'dbus-next';
import { startSimulatedBluez, type DeviceSpec } from '../../src/testing/index.js';
import { SCALE_ADAPTERS, scaleAddress } from './scale-common.js';

const BATTERY_SERVICE = '0000180f-0000-1000-8000-00805f9b34fb';
const BATTERY_LEVEL = '00002a19-0000-1000-8000-00805f9b34fb';
function device(i: number, adapters: string[]): DeviceSpec {
  return {
    address: scaleAddress(i),
    name: `scale-${i}`,
    addressType: 'random',
    rssi: -50 - (i % 40),
    knownOn: adapters,
    uuids: [BATTERY_SERVICE],
    services: [
      {
        uuid: BATTERY_SERVICE,
        characteristics: [{ uuid: BATTERY_LEVEL, flags: ['read', 'notify'], value: [87] }],
      },
    ],
  };
}

async function raw(address: string): Promise<MessageBus> {
  const bus = dbus.sessionBus({ busAddress: address });
  bus.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no Hello reply')), 10_000);
    bus.on('connect', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return bus;
}

async function daemonCall(
  bus: MessageBus,
  iface: string,
  member: string,
  signature = '',
  body: unknown[] = [],
) {
  const reply = await bus.call(
    new dbus.Message({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: iface,
      member,
      signature,
      body,
    }),
  );
  return (reply?.body ?? []) as unknown[];
}

async function main(): Promise<void> {
  const n = Number(process.argv[2]);
  if (!Number.isInteger(n) || n < 1) throw new RangeError('usage: scale-sim N');
  const adapters = Array.from({ length: SCALE_ADAPTERS }, (_, i) => `hci${i}`);
  const env = await startSimulatedBluez({
    scenario: {
      adapters: adapters.map((name) => ({ name })),
      devices: Array.from({ length: n }, (_, i) => device(i, adapters)),
    },
    latencyScale: 0.01,
  });
  const probe = await raw(env.address);
  const monitor = await raw(env.address);
  const errors = new Map<string, number>();
  const errorsTo = new Map<string, Map<string, number>>();
  monitor.addMethodHandler(() => true);
  monitor.on('message', (msg: Message) => {
    if (msg.type !== dbus.MessageType.ERROR || msg.errorName === undefined) return;
    errors.set(msg.errorName, (errors.get(msg.errorName) ?? 0) + 1);
    const to = msg.destination ?? '';
    let byName = errorsTo.get(to);
    if (byName === undefined) errorsTo.set(to, (byName = new Map()));
    byName.set(msg.errorName, (byName.get(msg.errorName) ?? 0) + 1);
  });
  await daemonCall(monitor, 'org.freedesktop.DBus.Monitoring', 'BecomeMonitor', 'asu', [
    ["type='error'"],
    0,
  ]).catch(() => undefined);

  process.on('message', (raw: unknown) => {
    const req = raw as { id: number; cmd: string; name?: string };
    void (async () => {
      try {
        if (req.cmd === 'stop') {
          probe.disconnect();
          monitor.disconnect();
          await env.stop();
          process.send?.({ id: req.id, ok: true }, () => process.exit(0));
          return;
        }
        if (req.cmd === 'stats') {
          const name = req.name ?? '';
          const [conn] = await daemonCall(
            probe,
            'org.freedesktop.DBus.Debug.Stats',
            'GetConnectionStats',
            's',
            [name],
          ).catch(() => [{}]);
          const values: Record<string, number> = {};
          for (const [k, v] of Object.entries(conn as Record<string, { value: unknown }>))
            if (typeof v.value === 'number') values[k] = v.value;
          const [rules] = await daemonCall(probe, 'org.freedesktop.DBus.Debug.Stats', 'GetAllMatchRules');
          const links = env.sim
            .state()
            .adapters.reduce((sum, a) => sum + a.devices.filter((d) => d.connected).length, 0);
          process.send?.({
            id: req.id,
            ok: true,
            stats: values,
            rules: ((rules as Record<string, string[]>)[name] ?? []).length,
            links,
            errors: Object.fromEntries(errors),
            errorsToName: Object.fromEntries(errorsTo.get(name) ?? []),
          });
          return;
        }
        process.send?.({ id: req.id, ok: false, error: `unknown command ${req.cmd}` });
      } catch (err) {
        process.send?.({ id: req.id, ok: false, error: String(err) });
      }
    })();
  });
  process.on('disconnect', () => {
    void env.stop().finally(() => process.exit(0));
  });
  process.send?.({ ready: true, address: env.address });
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

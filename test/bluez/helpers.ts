/**
 * Test helpers for src/bluez: a raw test service, a monitor connection that counts messages, and
 * the daemon's own Debug.Stats view of connections and match rules.
 */
import dbus from 'dbus-next';
import type { Message, MessageBus } from 'dbus-next';

/** Opens a plain dbus-next connection and waits for Hello. */
export async function rawConnection(address: string): Promise<MessageBus> {
  const bus = dbus.sessionBus({ busAddress: address });
  bus.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('raw connection: no Hello reply')), 10_000);
    bus.on('connect', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return bus;
}

/** Calls a method on a raw connection and returns the reply body. */
export async function rawCall(
  bus: MessageBus,
  destination: string,
  path: string,
  iface: string,
  member: string,
  signature = '',
  body: unknown[] = [],
): Promise<unknown[]> {
  const reply = await bus.call(
    new dbus.Message({ destination, path, interface: iface, member, signature, body }),
  );
  return (reply?.body ?? []) as unknown[];
}

/** The daemon's view (org.freedesktop.DBus.Debug.Stats): match rules per connection, connection count. */
export interface DaemonStats {
  /** Unique name → its match rules. */
  rulesByConnection: Map<string, string[]>;
  /** Names currently on the bus (ListNames). */
  names: string[];
  activeConnections: number;
}

/** Reads Debug.Stats through a short-lived probe connection (excluded from the result). */
export async function daemonStats(address: string): Promise<DaemonStats> {
  const probe = await rawConnection(address);
  try {
    const own = (probe as unknown as { name: string }).name;
    const [rules] = await rawCall(
      probe,
      'org.freedesktop.DBus',
      '/org/freedesktop/DBus',
      'org.freedesktop.DBus.Debug.Stats',
      'GetAllMatchRules',
    );
    const [stats] = await rawCall(
      probe,
      'org.freedesktop.DBus',
      '/org/freedesktop/DBus',
      'org.freedesktop.DBus.Debug.Stats',
      'GetStats',
    );
    const [names] = await rawCall(
      probe,
      'org.freedesktop.DBus',
      '/org/freedesktop/DBus',
      'org.freedesktop.DBus',
      'ListNames',
    );
    const rulesByConnection = new Map<string, string[]>();
    for (const [name, list] of Object.entries(rules as Record<string, string[]>)) {
      if (name !== own) rulesByConnection.set(name, list);
    }
    const active = (stats as Record<string, { value: number }>).ActiveConnections?.value ?? -1;
    return {
      rulesByConnection,
      names: (names as string[]).filter((n) => n !== own),
      activeConnections: active - 1,
    };
  } finally {
    probe.disconnect();
  }
}

/** A service with a method that never replies (`Hang`) and one that does (`Echo`). */
export interface TestService {
  readonly name: string;
  readonly path: string;
  readonly iface: string;
  /** Calls received so far (member names). */
  readonly received: string[];
  close(): void;
}

/** Starts {@link TestService} on `address` under the well-known name `org.example.Test`. */
export async function startTestService(address: string): Promise<TestService> {
  const bus = await rawConnection(address);
  const received: string[] = [];
  const iface = 'org.example.Test';
  bus.addMethodHandler((msg: Message) => {
    if (msg.interface !== iface) return false;
    received.push(msg.member);
    if (msg.member === 'Hang') return true; // never reply: the client's deadline must fire
    if (msg.member === 'Echo') {
      bus.send(dbus.Message.newMethodReturn(msg, msg.signature, msg.body));
      return true;
    }
    if (msg.member === 'Fail') {
      bus.send(dbus.Message.newError(msg as unknown as string, String(msg.body[0]), String(msg.body[1])));
      return true;
    }
    return false;
  });
  await bus.requestName(iface, 0);
  return { name: iface, path: '/org/example', iface, received, close: () => bus.disconnect() };
}

/** A monitor connection (BecomeMonitor) that records every message on the bus. */
export interface BusMonitor {
  /** Messages seen, as `sender → destination iface.member`. */
  readonly messages: Array<{
    sender: string;
    destination: string;
    type: number;
    member: string;
    iface: string;
  }>;
  /** Messages sent by `uniqueName` since the monitor started or was last cleared. */
  sentBy(uniqueName: string): number;
  clear(): void;
  close(): void;
}

/** Starts a monitor on `address`. Method calls it sees are swallowed (a monitor must never reply). */
export async function startMonitor(address: string): Promise<BusMonitor> {
  const bus = await rawConnection(address);
  const messages: BusMonitor['messages'] = [];
  bus.addMethodHandler(() => true);
  bus.on('message', (msg: Message) => {
    messages.push({
      sender: msg.sender,
      destination: msg.destination,
      type: msg.type,
      member: msg.member,
      iface: msg.interface,
    });
  });
  await rawCall(
    bus,
    'org.freedesktop.DBus',
    '/org/freedesktop/DBus',
    'org.freedesktop.DBus.Monitoring',
    'BecomeMonitor',
    'asu',
    [[], 0],
  ).catch((err: unknown) => {
    // The reply to BecomeMonitor may not arrive as a normal reply on every daemon version.
    if (!(err instanceof Error)) throw err;
  });
  return {
    messages,
    sentBy: (name) => messages.filter((m) => m.sender === name).length,
    clear: () => {
      messages.length = 0;
    },
    close: () => bus.disconnect(),
  };
}

/** A promise that settles in `ms` (only for letting time pass in "nothing happens" checks). */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

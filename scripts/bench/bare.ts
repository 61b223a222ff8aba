/**
 * The bare reference: what a client with no connection management at all does. One raw dbus-next
 * connection, a match rule set up beforehand, Device1.Connect, then wait for ServicesResolved=true
 * (and the method reply). No mirror, no node-ble, no validation.
 */
import dbus from 'dbus-next';
import type { MessageBus } from 'dbus-next';

const { Message } = dbus;

export interface BareClient {
  /** ms from sending Connect until both its reply and ServicesResolved=true arrived. */
  connect(adapter: string, address: string, timeoutMs: number): Promise<number>;
  /** Disconnect and wait for Connected=false (not timed). */
  disconnect(adapter: string, address: string, timeoutMs: number): Promise<void>;
  close(): void;
}

function devicePath(adapter: string, address: string): string {
  return `/org/bluez/${adapter}/dev_${address.toUpperCase().replace(/:/g, '_')}`;
}

function call(bus: MessageBus, path: string, iface: string, member: string, timeoutMs: number) {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    bus.call(new Message({ destination: 'org.bluez', path, interface: iface, member })),
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${member} on ${path}: no reply within ${timeoutMs} ms`)),
        timeoutMs,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Opens the bare client; tcp: addresses use ANONYMOUS (the VM guest's bus). */
export async function openBare(busAddress: string): Promise<BareClient> {
  const bus = dbus.sessionBus({
    busAddress,
    authMethods: busAddress.startsWith('tcp:') ? ['ANONYMOUS'] : ['EXTERNAL'],
  });
  bus.on('error', () => undefined);
  const rule =
    "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'";
  await bus.call(
    new Message({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member: 'AddMatch',
      signature: 's',
      body: [rule],
    }),
  );
  const watchers = new Set<(path: string, changed: Record<string, { value: unknown }>) => void>();
  bus.on('message', (msg: InstanceType<typeof Message>) => {
    if (msg.member !== 'PropertiesChanged' || msg.body[0] !== 'org.bluez.Device1' || msg.path === undefined)
      return;
    for (const w of watchers) w(msg.path, msg.body[1] as Record<string, { value: unknown }>);
  });
  const waitProp = (path: string, name: string, value: boolean, timeoutMs: number) => {
    let off: () => void = () => {};
    let seenAt: number | undefined;
    const promise = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new Error(`${name}=${value} not seen on ${path} within ${timeoutMs} ms`));
      }, timeoutMs);
      const w = (p: string, changed: Record<string, { value: unknown }>) => {
        if (p === path && changed[name]?.value === value) {
          seenAt = performance.now();
          clearTimeout(timer);
          off();
          resolve();
        }
      };
      watchers.add(w);
      off = () => watchers.delete(w);
    });
    return { promise, cancel: () => off(), seenAt: () => seenAt };
  };
  return {
    async connect(adapter, address, timeoutMs) {
      const path = devicePath(adapter, address);
      const resolved = waitProp(path, 'ServicesResolved', true, timeoutMs);
      const t0 = performance.now();
      try {
        await call(bus, path, 'org.bluez.Device1', 'Connect', timeoutMs);
        const replyAt = performance.now();
        // Already resolved when the reply came (a signal this client could have missed)?
        const reply = await bus.call(
          new Message({
            destination: 'org.bluez',
            path,
            interface: 'org.freedesktop.DBus.Properties',
            member: 'Get',
            signature: 'ss',
            body: ['org.bluez.Device1', 'ServicesResolved'],
          }),
        );
        const getAt = performance.now();
        if (
          resolved.seenAt() === undefined &&
          (reply?.body[0] as { value?: unknown } | undefined)?.value === true
        ) {
          resolved.cancel();
          return getAt - t0;
        }
        await resolved.promise;
        // Both the reply and ServicesResolved=true are needed, whichever came last.
        return Math.max(replyAt, resolved.seenAt() ?? performance.now()) - t0;
      } catch (err) {
        resolved.cancel();
        throw err;
      }
    },
    async disconnect(adapter, address, timeoutMs) {
      const path = devicePath(adapter, address);
      const down = waitProp(path, 'Connected', false, timeoutMs);
      try {
        await Promise.all([call(bus, path, 'org.bluez.Device1', 'Disconnect', timeoutMs), down.promise]);
      } catch (err) {
        down.cancel();
        throw err;
      }
    },
    close() {
      bus.disconnect();
    },
  };
}

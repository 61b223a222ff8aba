import { DBusError, Message, MessageType } from 'dbus-next';
import type { MessageBus } from 'dbus-next';

/** A method call on a remote D-Bus object. */
export interface MethodCall {
  destination: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: unknown[];
}

/**
 * Calls a D-Bus method and gives up after `timeoutMs`: dbus-next has no call timeout, and a
 * bluetoothd that is restarting (or a guest that is frozen) would otherwise leave the caller
 * waiting forever. Rejects with dbus-next's DBusError (its `type` is the D-Bus error name).
 */
export async function callWithDeadline(
  bus: MessageBus,
  call: MethodCall,
  timeoutMs: number,
): Promise<unknown[]> {
  const message = new Message({
    type: MessageType.METHOD_CALL,
    destination: call.destination,
    path: call.path,
    interface: call.interface,
    member: call.member,
    signature: call.signature ?? '',
    body: call.body ?? [],
  });
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new DBusError(
            'org.freedesktop.DBus.Error.Timeout',
            `${call.interface}.${call.member} on ${call.path} did not answer within ${timeoutMs} ms`,
          ),
        ),
      timeoutMs,
    );
  });
  try {
    const reply = await Promise.race([bus.call(message), deadline]);
    const body: unknown[] = reply?.body ?? [];
    return body;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A quick look at a D-Bus address before the shared connection starts retrying it. dbus-next
 * reports a missing or refused socket only as a failed connect, which the shared bus retries with
 * backoff until `openTimeoutMs` (25 s by default): an app pointed at a wrong path waited that long
 * for an error that did not even name the path. A socket that exists and accepts is left to the
 * normal path, which waits while org.bluez is not yet up.
 */
import { createConnection } from 'node:net';
import { BusUnreachableError } from './errors.js';

/** Where a D-Bus address points, for the transports a BlueZ client meets. */
type Endpoint =
  { kind: 'unix'; path: string; abstract: boolean } | { kind: 'tcp'; host: string; port: number };

/** Parses the first transport of a D-Bus address (`unix:path=…`, `unix:abstract=…`, `tcp:host=…,port=…`). */
export function endpointOf(address: string): Endpoint | undefined {
  const first = address.split(';')[0] ?? '';
  const colon = first.indexOf(':');
  if (colon < 0) return undefined;
  const transport = first.slice(0, colon);
  const keys = new Map<string, string>();
  for (const pair of first.slice(colon + 1).split(',')) {
    const eq = pair.indexOf('=');
    if (eq > 0) keys.set(pair.slice(0, eq), safeDecode(pair.slice(eq + 1)));
  }
  if (transport === 'unix') {
    const path = keys.get('path');
    if (path !== undefined) return { kind: 'unix', path, abstract: false };
    const abstract = keys.get('abstract');
    if (abstract !== undefined) return { kind: 'unix', path: `\0${abstract}`, abstract: true };
    return undefined;
  }
  if (transport === 'tcp') {
    const port = Number(keys.get('port'));
    if (!Number.isInteger(port) || port <= 0) return undefined;
    return { kind: 'tcp', host: keys.get('host') ?? 'localhost', port };
  }
  return undefined;
}

function safeDecode(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}

const ADVICE: Record<string, (where: string) => string> = {
  ENOENT: (where) =>
    `There is no D-Bus socket at ${where}. Is the D-Bus daemon running (systemctl status dbus)? In a ` +
    'container, mount the host socket (/run/dbus/system_bus_socket); elsewhere set ' +
    'DBUS_SYSTEM_BUS_ADDRESS or busAddress to the right address.',
  ENOTDIR: (where) => `A part of ${where} is not a directory: check busAddress / DBUS_SYSTEM_BUS_ADDRESS.`,
  EACCES: (where) =>
    `Permission denied on ${where}: run as a user allowed to open the system bus socket (and allowed ` +
    'by the D-Bus policy for org.bluez, e.g. in the bluetooth group), or fix the socket permissions.',
  EPERM: (where) => `Permission denied on ${where}: run as a user allowed to open it.`,
  ECONNREFUSED: (where) =>
    `Nothing accepts connections at ${where}: the D-Bus daemon is not running (a stale socket file ` +
    'left behind?) or listens elsewhere. Start dbus or correct the address.',
};

/**
 * Resolves when the address's socket accepts a connection, or when the look is inconclusive (no
 * answer within `timeoutMs`, a transport it does not know). Rejects at once, with the errno and
 * the path in the message, when the socket is missing, refused or not permitted.
 * @throws BusUnreachableError (code BUS_UNREACHABLE), `signal.reason` when aborted
 */
export function probeBusAddress(
  address: string,
  options: { timeoutMs: number; signal?: AbortSignal },
): Promise<void> {
  const endpoint = endpointOf(address);
  if (endpoint === undefined) return Promise.resolve();
  const where =
    endpoint.kind === 'tcp'
      ? `${endpoint.host}:${endpoint.port}`
      : endpoint.abstract
        ? `abstract socket ${endpoint.path.slice(1)}`
        : endpoint.path;
  return new Promise<void>((resolve, reject) => {
    const socket =
      endpoint.kind === 'tcp'
        ? createConnection({ host: endpoint.host, port: endpoint.port })
        : createConnection({ path: endpoint.path });
    const finish = (err?: unknown): void => {
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.removeAllListeners();
      socket.on('error', () => {});
      socket.destroy();
      if (err === undefined) resolve();
      else reject(err);
    };
    const onAbort = (): void => finish(options.signal?.reason);
    const timer = setTimeout(() => finish(), options.timeoutMs);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    socket.once('connect', () => finish());
    socket.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? '';
      const advise = ADVICE[code];
      // Anything else (a reset, an unreachable host) is left to the normal connect-and-retry path.
      if (advise === undefined) return finish();
      finish(
        new BusUnreachableError(`cannot open the D-Bus socket at ${where}: ${code} (${err.message})`, {
          address,
          errno: code,
          advice: advise(where),
          cause: err,
        }),
      );
    });
  });
}

/**
 * `bluez-cm doctor [--json] [--timeout-ms N]`: one bounded look at BlueZ on the system bus (or
 * DBUS_SYSTEM_BUS_ADDRESS): is bluetoothd there and answering, which adapters are powered or
 * discovering, which devices are connected, which are phantoms, and whether locks are configured —
 * each with advice. Every D-Bus call has a deadline, and the whole check has one, so a missing or
 * hung bluetoothd is reported, never waited on.
 */
import { existsSync } from 'node:fs';
import { openBluez, type BluezClient } from '../index.js';
import {
  DBUS_AUTH_HELP,
  authMethodsFlag,
  numberFlag,
  parseFlags,
  usageFailure,
  type DBusAuthMethod,
} from './args.js';
import { diagnose, exitCode, type Finding, type Observation } from './doctor/checks.js';

const HELP = `usage: bluez-cm doctor [--json] [--timeout-ms N] [--dbus-auth M,M]

Looks at BlueZ on the system bus (DBUS_SYSTEM_BUS_ADDRESS is respected) and
reports: bus reachable, bluetoothd running and answering (org.bluez owner),
adapters (powered, discovering), connected devices, phantom connections
(Connected without ServicesResolved), lock holders — each with advice.
Exit 0 when healthy, 1 when something needs attention, 2 for bad arguments.

  -t, --timeout-ms N  deadline of the whole check (default 5000)
${DBUS_AUTH_HELP}
      --json          one JSON object: findings and what was seen
  -h, --help          this text
`;

const MARK: Record<Finding['level'], string> = { ok: 'ok   ', info: 'info ', warn: 'WARN ', error: 'ERROR' };

const defaultBusAddress = (): string =>
  process.env.DBUS_SYSTEM_BUS_ADDRESS ?? 'unix:path=/var/run/dbus/system_bus_socket';

/** Opens BlueZ and reads what doctor needs, all within `timeoutMs`. */
async function observe(
  timeoutMs: number,
  authMethods: readonly DBusAuthMethod[] | undefined,
): Promise<Observation> {
  const busAddress = defaultBusAddress();
  const empty = { bluezOwner: null, syncError: null, adapters: [], devices: [] };
  // A missing socket is certain at once; the bus client would retry until its deadline.
  const socket = /^unix:path=([^,;]+)/.exec(busAddress)?.[1];
  if (socket !== undefined && !existsSync(socket)) {
    return { busAddress, busError: `the socket ${socket} does not exist`, ...empty };
  }
  const signal = AbortSignal.timeout(timeoutMs);
  let bluez: BluezClient | undefined;
  try {
    bluez = await openBluez({
      busAddress,
      authMethods,
      signal,
      openTimeoutMs: timeoutMs,
      dbusCallTimeoutMs: timeoutMs,
      propertyTimeoutMs: timeoutMs,
    });
  } catch (e) {
    const message = (e as Error).message;
    const reason = signal.aborted ? `no answer within ${timeoutMs} ms (${message})` : message;
    return { busAddress, busError: reason, ...empty };
  }
  try {
    const owner = bluez.mirror.owner ?? null;
    // The bus daemon answers GetNameOwner itself; a tree that is still not synced after the
    // deadline means org.bluez's owner did not answer GetManagedObjects: a hung bluetoothd.
    const syncError = bluez.mirror.synced ? null : `GetManagedObjects got no reply within ${timeoutMs} ms`;
    return {
      busAddress,
      busError: null,
      bluezOwner: owner,
      syncError,
      adapters: bluez.adapters(),
      devices: bluez.mirror.devices(),
    };
  } finally {
    await bluez.close();
  }
}

export async function run(args: string[]): Promise<number> {
  let json: boolean;
  let timeoutMs: number;
  let authMethods: readonly DBusAuthMethod[] | undefined;
  try {
    const { values } = parseFlags(args, {
      json: { type: 'boolean' },
      'timeout-ms': { type: 'string', short: 't' },
      'dbus-auth': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    });
    if (values.help === true) {
      process.stdout.write(HELP);
      return 0;
    }
    json = values.json === true;
    timeoutMs = numberFlag(values, 'timeout-ms', { min: 100, max: 600_000, integer: true }) ?? 5000;
    authMethods = authMethodsFlag(values);
  } catch (e) {
    return usageFailure('doctor', e, HELP);
  }

  const observation = await observe(timeoutMs, authMethods);
  const findings = diagnose(observation);
  const code = exitCode(findings);
  if (json) {
    const report = {
      healthy: code === 0,
      bus: { address: observation.busAddress, reachable: observation.busError === null },
      bluetoothd: {
        running: observation.bluezOwner !== null || observation.syncError !== null,
        owner: observation.bluezOwner,
        answering: observation.syncError === null && observation.bluezOwner !== null,
      },
      adapters: observation.adapters.map((a) => ({
        name: a.name,
        address: a.address,
        powered: a.powered,
        discovering: a.discovering,
      })),
      connected: observation.devices
        .filter((d) => d.connected && d.servicesResolved)
        .map((d) => ({ address: d.address, adapter: d.adapter, name: d.name ?? null })),
      phantoms: observation.devices
        .filter((d) => d.connected && !d.servicesResolved)
        .map((d) => ({ address: d.address, adapter: d.adapter, name: d.name ?? null })),
      locks: { configured: false },
      findings,
    };
    process.stdout.write(`${JSON.stringify(report)}\n`);
    return code;
  }
  const lines = [`bluez-cm doctor: ${observation.busAddress}`];
  const width = Math.max(...findings.map((f) => f.subject.length));
  for (const f of findings) {
    lines.push(`${MARK[f.level]} ${f.subject.padEnd(width)}  ${f.message}`);
    if (f.advice !== undefined) lines.push(`${' '.repeat(width + 8)}→ ${f.advice}`);
  }
  const problems = findings.filter((f) => f.level === 'warn' || f.level === 'error').length;
  lines.push(problems === 0 ? 'healthy' : `${problems} problem${problems === 1 ? '' : 's'} found`);
  process.stdout.write(`${lines.join('\n')}\n`);
  return code;
}

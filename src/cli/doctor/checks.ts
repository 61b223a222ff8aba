/**
 * What `bluez-cm doctor` concludes from one look at BlueZ: pure functions from snapshots to
 * findings, each with advice a person can act on. The advice names the failure it is about:
 * phantoms hold controller slots, an unpowered or blocked adapter gives
 * NotReady, a missing bluetoothd turns every call into ServiceUnknown.
 */
import type { AdapterSnapshot, DeviceSnapshot } from '../../index.js';
import { describeHolders, lockName, type LockReport } from '../lock-report.js';

/** How bad a finding is. */
export type Level = 'ok' | 'info' | 'warn' | 'error';

/** One line of the report. */
export interface Finding {
  readonly level: Level;
  /** What it is about: `bus`, `bluetoothd`, `hci0`, a MAC, `locks`. */
  readonly subject: string;
  readonly message: string;
  /** What to do about it (absent for `ok`). */
  readonly advice?: string;
}

/** What doctor saw. */
export interface Observation {
  readonly busAddress: string;
  /** Why the bus could not be opened, or null. */
  readonly busError: string | null;
  /** Unique name owning org.bluez, or null when nobody does. */
  readonly bluezOwner: string | null;
  /** Why BlueZ's object tree could not be read in time (a hung bluetoothd), or null. */
  readonly syncError: string | null;
  readonly adapters: readonly AdapterSnapshot[];
  readonly devices: readonly DeviceSnapshot[];
  /** The lock directory and who holds its slot and scan locks. */
  readonly locks: LockReport;
}

const label = (d: DeviceSnapshot): string => (d.name ? ` (${d.name})` : '');

/** The findings, in report order. */
export function diagnose(o: Observation): Finding[] {
  const findings: Finding[] = [];
  if (o.busError !== null) {
    findings.push({
      level: 'error',
      subject: 'bus',
      message: `cannot open ${o.busAddress}: ${o.busError}`,
      advice:
        'Is D-Bus running (systemctl status dbus)? To check a test bus, set DBUS_SYSTEM_BUS_ADDRESS to its address.',
    });
    return findings;
  }
  findings.push({ level: 'ok', subject: 'bus', message: `reachable at ${o.busAddress}` });
  if (o.syncError !== null) {
    findings.push({
      level: 'error',
      subject: 'bluetoothd',
      message: `org.bluez is owned but bluetoothd did not answer: ${o.syncError}`,
      advice:
        'bluetoothd looks hung (a D-Bus call without a reply): sudo systemctl restart bluetooth, then check ' +
        'journalctl -u bluetooth for the controller error that preceded it.',
    });
    return findings;
  }
  if (o.bluezOwner === null) {
    findings.push({
      level: 'error',
      subject: 'bluetoothd',
      message: 'org.bluez has no owner on the bus: bluetoothd is not running',
      advice:
        'Start it: sudo systemctl start bluetooth (journalctl -u bluetooth -n 50 shows why it stopped). ' +
        'Until it is back every BlueZ call fails with ServiceUnknown; the library waits for org.bluez.',
    });
    return findings;
  }
  findings.push({
    level: 'ok',
    subject: 'bluetoothd',
    message: `running (org.bluez owned by ${o.bluezOwner})`,
  });

  if (o.adapters.length === 0) {
    findings.push({
      level: 'error',
      subject: 'adapters',
      message: 'BlueZ reports no adapter',
      advice:
        'No controller is registered: check rfkill list, lsusb / dmesg | grep -i bluetooth for the USB dongle or ' +
        'UART controller, and btmgmt info.',
    });
  }
  for (const a of o.adapters) {
    const devices = o.devices.filter((d) => d.adapter === a.name);
    const connected = devices.filter((d) => d.connected).length;
    const facts = `${a.address}${a.alias ? ` "${a.alias}"` : ''}, ${devices.length} device${devices.length === 1 ? '' : 's'} known, ${connected} connected${a.discovering ? ', discovering' : ''}`;
    if (!a.powered) {
      findings.push({
        level: 'warn',
        subject: a.name,
        message: `not powered (${facts})`,
        advice: `Connects on ${a.name} fail with NotReady: bluetoothctl power on (select ${a.address} first), or rfkill unblock bluetooth if it is soft-blocked.`,
      });
    } else {
      findings.push({ level: 'ok', subject: a.name, message: `powered (${facts})` });
    }
    if (a.discovering) {
      findings.push({
        level: 'info',
        subject: a.name,
        message: 'a discovery session is running',
        advice:
          'Normal while a client scans; on many controllers a scan slows or aborts LE connects, so keep scans short ' +
          '(one scanning process, the others listen).',
      });
    }
  }
  for (const d of o.devices.filter((x) => x.connected && x.servicesResolved)) {
    findings.push({
      level: 'ok',
      subject: d.address,
      message: `connected on ${d.adapter}${label(d)}, services resolved`,
    });
  }
  for (const d of o.devices.filter((x) => x.connected && !x.servicesResolved)) {
    findings.push({
      level: 'warn',
      subject: d.address,
      message: `phantom on ${d.adapter}${label(d)}: Connected, but its services never resolved`,
      advice:
        `It holds a controller slot and new connects to it can fail. If no process is still connecting it: ` +
        `bluetoothctl disconnect ${d.address} (may hang on a phantom; then bluetoothctl remove ${d.address}), ` +
        `or let the library clear it: bluez-cm connect ${d.address} --close-inactive.`,
    });
  }
  findings.push(...lockFindings(o.locks));
  return findings;
}

/** One line per held lock file, or one saying that none is held / none exists. */
function lockFindings(report: LockReport): Finding[] {
  if (report.files.length === 0) {
    return [
      {
        level: 'info',
        subject: 'locks',
        message: `no slot or scan lock files in ${report.dir} (no service here has used cross-process locks since boot)`,
      },
    ];
  }
  const held = report.files.filter((f) => f.holders.length > 0);
  const out: Finding[] = held.map((f) => ({
    level: 'info',
    subject: 'locks',
    message: `${lockName(f)} held by ${describeHolders(f)} (${f.path})`,
  }));
  const slots = report.files.filter((f) => f.kind === 'slot');
  out.push({
    level: 'info',
    subject: 'locks',
    message:
      `${report.files.length} lock file${report.files.length === 1 ? '' : 's'} in ${report.dir}, ` +
      `${held.length} held (${slots.filter((f) => f.holders.length > 0).length}/${slots.length} connection slots)`,
  });
  return out;
}

/** Exit status of a report: 0 healthy, 1 when anything is a warning or an error. */
export function exitCode(findings: readonly Finding[]): number {
  return findings.some((f) => f.level === 'warn' || f.level === 'error') ? 1 : 0;
}

/**
 * A fake host for the reset ladder: a sysfs tree in a temp dir (rfkill switches, a USB-attached and a
 * UART-attached controller), an in-memory BlueZ port whose adapters react to Powered and to the USB
 * `authorized` file, a recording clock, and the path of the fake restart command.
 */
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LadderBluezPort, LadderClock } from '../../src/actors/reset-ladder-ports.js';

export const FAKE_RESTART = join(dirname(fileURLToPath(import.meta.url)), 'fake-restart.mjs');

export interface FakeAdapter {
  present: boolean;
  powered: boolean;
  /** Powered=true is refused (a wedged controller) while false. */
  canPowerOn: boolean;
  /** Powered=true never replies (a hung bluetoothd) while true. */
  hangPowerOn?: boolean;
  connected: string[];
}

export interface FakeSystem {
  root: string;
  /** Every action in order: `stopDiscovery hci0`, `power hci0 off`, `sleep 500 soft=… authorized=…`, … */
  events: string[];
  adapters: Map<string, FakeAdapter>;
  bluez: LadderBluezPort;
  clock: LadderClock & { advance(ms: number): void };
  /** Where the fake restart command records its argv. */
  restartRecord: string;
  usbAuthorized: string;
  rfkillSoft: string;
  rfkillHard: string;
  restartArgv(): Promise<string[][]>;
  /** Called during each pause with what the files say (a test can make the replug "work" here). */
  onSleep: (files: { soft: string; authorized: string }) => void;
  cleanup(): Promise<void>;
}

async function readOr(path: string, fallback: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return fallback;
  }
}

/** hci0: USB (1-1.2:1.0 under usb1/1-1/1-1.2) with rfkill0; hci1: UART (serial0-0) with rfkill1. */
export async function fakeSystem(): Promise<FakeSystem> {
  const root = await mkdtemp(join(tmpdir(), 'bcm-ladder-'));
  const usbDevice = join(root, 'devices', 'platform', 'usb1', '1-1', '1-1.2');
  const usbIface = join(usbDevice, '1-1.2:1.0');
  const uart = join(root, 'devices', 'platform', 'serial0', 'serial0-0');
  await mkdir(usbIface, { recursive: true });
  await mkdir(uart, { recursive: true });
  await writeFile(join(usbDevice, 'authorized'), '1\n');
  for (const [name, iface] of [
    ['hci0', usbIface],
    ['hci1', uart],
  ] as const) {
    await mkdir(join(root, 'class', 'bluetooth', name), { recursive: true });
    await symlink(iface, join(root, 'class', 'bluetooth', name, 'device'));
  }
  for (const [index, name] of ['hci0', 'hci1'].entries()) {
    const dir = join(root, 'class', 'rfkill', `rfkill${index}`);
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, 'name'), `${name}\n`);
    await writeFile(join(dir, 'type'), 'bluetooth\n');
    await writeFile(join(dir, 'soft'), '0\n');
    await writeFile(join(dir, 'hard'), '0\n');
  }
  const usbAuthorized = join(usbDevice, 'authorized');
  const rfkillSoft = join(root, 'class', 'rfkill', 'rfkill0', 'soft');
  const rfkillHard = join(root, 'class', 'rfkill', 'rfkill0', 'hard');
  const restartRecord = join(root, 'restart-argv.jsonl');
  const events: string[] = [];
  const adapters = new Map<string, FakeAdapter>([
    ['hci0', { present: true, powered: true, canPowerOn: true, connected: [] }],
    ['hci1', { present: true, powered: true, canPowerOn: true, connected: [] }],
  ]);
  let now = 1_000_000;

  const get = (name: string): FakeAdapter => {
    const a = adapters.get(name);
    if (a === undefined || !a.present) throw new Error(`org.freedesktop.DBus.Error.UnknownObject: ${name}`);
    return a;
  };

  const bluez: LadderBluezPort = {
    async stopDiscovery(adapter) {
      events.push(`stopDiscovery ${adapter}`);
      get(adapter);
    },
    async setPowered(adapter, on, { signal, timeoutMs }) {
      events.push(`power ${adapter} ${on ? 'on' : 'off'}`);
      const a = get(adapter);
      if (on && a.hangPowerOn) {
        // Never replies: ends like the real client does, at its deadline or on abort.
        await new Promise((_, reject) => {
          const timer = setTimeout(() => reject(new Error(`no reply within ${timeoutMs} ms`)), timeoutMs);
          signal.addEventListener(
            'abort',
            () => {
              clearTimeout(timer);
              reject(signal.reason);
            },
            { once: true },
          );
        });
      }
      if (on && !a.canPowerOn) throw new Error('org.bluez.Error.Failed: Failed to set mode');
      // A soft-blocked controller refuses to power on, as the kernel does (-ERFKILL).
      if (on && adapter === 'hci0' && (await readOr(rfkillSoft, '0')) === '1') {
        throw new Error('org.bluez.Error.Blocked: Blocked through rfkill');
      }
      a.powered = on;
      if (!on) a.connected = [];
    },
    powered: (adapter) => {
      const a = adapters.get(adapter);
      return a?.present ? a.powered : undefined;
    },
    connectedDevices: (adapter) =>
      [...adapters.entries()]
        .filter(([name, a]) => a.present && (adapter === undefined || name === adapter))
        .flatMap(([name, a]) => a.connected.map((address) => ({ adapter: name, address }))),
    async waitForAdapter(adapter) {
      events.push(`waitForAdapter ${adapter}`);
      if (adapters.get(adapter)?.present !== true) throw new Error(`${adapter} did not come back`);
    },
    async waitForBluez() {
      events.push('waitForBluez');
    },
  };

  const clock = {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
    async sleep(ms: number) {
      // Snapshot what the system files say during each pause: the ladder's writes are visible here.
      const files = { soft: await readOr(rfkillSoft, '?'), authorized: await readOr(usbAuthorized, '?') };
      events.push(`sleep ${ms} soft=${files.soft} authorized=${files.authorized}`);
      system.onSleep(files);
    },
  };

  const system: FakeSystem = {
    root,
    events,
    adapters,
    bluez,
    clock,
    restartRecord,
    usbAuthorized,
    rfkillSoft,
    rfkillHard,
    async restartArgv() {
      const text = await readOr(restartRecord, '');
      return text === '' ? [] : text.split('\n').map((line) => JSON.parse(line) as string[]);
    },
    onSleep: () => {},
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
  return system;
}

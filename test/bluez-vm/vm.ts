import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ControlChannel } from './control.js';

const HERE = dirname(fileURLToPath(import.meta.url));
export const GUEST_CACHE = process.env['BLUEZ_VM_CACHE'] ?? '/var/cache/bluez-cm-vm';

/**
 * Why this machine cannot run the real-BlueZ tier, or undefined when it can. Building needs root
 * (apt-get, debootstrap, chroot); booting needs qemu-system-x86_64 (installed by the build script).
 */
export function missingPrerequisite(): string | undefined {
  if (process.platform !== 'linux') return `needs Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0)
    return 'needs root: the guest build runs apt-get and debootstrap, and qemu shares its root over 9p';
  const apt = spawnSync('sh', ['-c', 'command -v apt-get && command -v dpkg'], { encoding: 'utf8' });
  if (apt.status !== 0)
    return 'needs a Debian-style host (apt-get, dpkg) to fetch the kernel and build the guest';
  return undefined;
}

/** Builds the guest into the cache dir, or reuses it; progress goes to this process's stderr. */
export async function buildGuest(timeoutMs: number): Promise<void> {
  const child = spawn(join(HERE, 'build-guest.sh'), [], { stdio: ['ignore', 'ignore', 'inherit'] });
  const code = await waitForExit(child, timeoutMs, 'build-guest.sh');
  if (code !== 0) throw new Error(`build-guest.sh failed with exit code ${String(code)}`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** A booted guest: its system bus address (for dbus-next) and its control channel. */
export interface BluezVm {
  /** `tcp:host=127.0.0.1,port=N`; connect with authMethods ['ANONYMOUS']. */
  readonly dbusAddress: string;
  readonly control: ControlChannel;
  /** Guest console output so far (kernel messages, init progress). */
  consoleText(): string;
  /** Kills qemu and waits for it to exit. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
// qemu must never outlive the test process: kill it on every exit path this process controls
// (boot.sh also runs it under setpriv --pdeathsig KILL for the paths it does not).
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Boots the guest and waits until bluetoothd, both controllers and the control server are up. */
export async function bootVm(timeoutMs: number): Promise<BluezVm> {
  const dbusPort = await freePort();
  let ctlPort = await freePort();
  while (ctlPort === dbusPort) ctlPort = await freePort();
  const child = spawn(join(HERE, 'boot.sh'), [], {
    env: { ...process.env, DBUS_PORT: String(dbusPort), CTL_PORT: String(ctlPort) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  let consoleText = '';
  const onData = (chunk: Buffer): void => {
    consoleText += chunk.toString('utf8');
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  exited.then(() => running.delete(child)).catch(() => {});

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  try {
    const end = Date.now() + timeoutMs;
    while (!/READY control port/.test(consoleText)) {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error('qemu exited before the guest was ready');
      if (/FAILED to start BlueZ/.test(consoleText))
        throw new Error('guest could not start bluetoothd/btvirt');
      if (Date.now() > end) throw new Error(`guest not ready within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const control = await ControlChannel.open(ctlPort, 30_000);
    return {
      dbusAddress: `tcp:host=127.0.0.1,port=${dbusPort}`,
      control,
      consoleText: () => consoleText,
      stop: async () => {
        control.close();
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw new Error(`${String(err)}\n--- guest console ---\n${consoleText.slice(-4000)}`, { cause: err });
  }
}

async function waitForExit(child: ChildProcess, timeoutMs: number, what: string): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${what} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

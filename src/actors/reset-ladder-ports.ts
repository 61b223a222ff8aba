/**
 * The system access of the adapter recovery ladder (docs/architecture.md), behind small ports so
 * that tests run the real ladder against a fake sysfs tree in a temp dir and a fake restart command,
 * and so that nothing in the ladder hard-codes /sys, /dev/rfkill or a shell.
 */
import { execFile } from 'node:child_process';
import type { BluezClient } from '../bluez/client-types.js';
import { BluezError, isAbortError } from '../bluez/errors.js';
import { adapterPath } from '../bluez/validate.js';
import { sleep } from './sleep.js';

/** What the ladder asks of BlueZ. {@link ladderBluezPort} builds it from a {@link BluezClient}. */
export interface LadderBluezPort {
  /** Adapter1.StopDiscovery of our own session (bounded). */
  stopDiscovery(adapter: string, options: { timeoutMs: number; signal: AbortSignal }): Promise<void>;
  /** Sets Adapter1.Powered and waits (bounded) until BlueZ shows it. */
  setPowered(
    adapter: string,
    on: boolean,
    options: { timeoutMs: number; signal: AbortSignal },
  ): Promise<void>;
  /** Powered as BlueZ shows it now; undefined when the adapter is not present. */
  powered(adapter: string): boolean | undefined;
  /** Devices connected now, on one adapter or (without `adapter`) on all. */
  connectedDevices(adapter?: string): Array<{ adapter: string; address: string }>;
  /** Resolves once the adapter is present and powered (bounded). */
  waitForAdapter(adapter: string, options: { timeoutMs: number; signal: AbortSignal }): Promise<void>;
  /** Resolves once org.bluez is on the bus again and synced (bounded). */
  waitForBluez(options: { timeoutMs: number; signal: AbortSignal }): Promise<void>;
}

/** The result of one external command. */
export interface CommandResult {
  readonly exitCode: number | null;
  readonly signal: string | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a program with an argument array, never a shell string. */
export type CommandRunner = (
  file: string,
  args: readonly string[],
  options: { timeoutMs: number; signal: AbortSignal },
) => Promise<CommandResult>;

/** Clock and sleep of the ladder (injectable so that cooldowns can be tested without waiting). */
export interface LadderClock {
  /** Epoch ms. */
  now(): number;
  /** Resolves after `ms`; rejects with `signal.reason` when aborted. */
  sleep(ms: number, signal: AbortSignal): Promise<void>;
}

/** The default command runner: `execFile` with a deadline (SIGKILL) and an AbortSignal. */
export const execFileRunner: CommandRunner = (file, args, options) =>
  new Promise((resolve, reject) => {
    execFile(
      file,
      [...args],
      { timeout: options.timeoutMs, killSignal: 'SIGKILL', signal: options.signal, encoding: 'utf8' },
      (error, stdout, stderr) => {
        if (error === null) {
          resolve({ exitCode: 0, signal: null, stdout, stderr });
          return;
        }
        if (isAbortError(error)) {
          reject(options.signal.reason ?? error);
          return;
        }
        const e = error as NodeJS.ErrnoException & { code?: unknown; signal?: unknown; killed?: boolean };
        if (typeof e.code === 'string') {
          // ENOENT / EACCES: the program could not be started at all.
          reject(error);
          return;
        }
        resolve({
          exitCode: typeof e.code === 'number' ? e.code : null,
          signal: typeof e.signal === 'string' ? e.signal : null,
          stdout,
          stderr,
        });
      },
    );
  });

/** The default clock: wall time and a cancellable timer. */
export const systemClock: LadderClock = {
  now: () => Date.now(),
  sleep,
};

/** The ladder's BlueZ port over a {@link BluezClient} (mirror reads, bounded calls). */
export function ladderBluezPort(bluez: BluezClient): LadderBluezPort {
  return {
    async stopDiscovery(adapter, options) {
      try {
        await bluez.stopDiscovery(adapter, options);
      } catch (err) {
        if (isAbortError(err)) throw err;
        // "No discovery started" (org.bluez.Error.Failed) just means we had no session: nothing to stop.
        if (err instanceof BluezError && err.dbusName !== undefined) return;
        throw err;
      }
    },
    setPowered: (adapter, on, options) => bluez.setPowered(adapter, on, { ...options, verify: true }),
    powered: (adapter) => bluez.mirror.adapter(adapter)?.powered,
    connectedDevices: (adapter) =>
      (adapter === undefined
        ? bluez.mirror.devices().filter((d) => d.connected)
        : bluez.mirror.connectedDevices(adapter)
      ).map((d) => ({ adapter: d.adapter, address: d.address })),
    async waitForAdapter(adapter, options) {
      await bluez.mirror.waitFor((m) => m.adapter(adapter)?.powered === true, {
        ...options,
        paths: [adapterPath(adapter)],
        description: `adapter ${adapter} present and powered`,
      });
    },
    waitForBluez: (options) => bluez.waitForBluez(options),
  };
}

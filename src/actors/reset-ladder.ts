/**
 * The adapter recovery ladder (docs/architecture.md), the implementation of the connection machine's
 * `resetAdapter` actor (its `resetting` state).
 *
 *   1. StopDiscovery of our own session   (a running scan keeps a wedged controller busy)
 *   2. power cycle through D-Bus          (Powered false → true, verified; 30 s cooldown per adapter)
 *   3. rfkill unblock through sysfs       (a soft-blocked controller refuses Powered=true)
 *   4. USB re-authorize through sysfs     (`authorized` 0 → 1, a replug; Realtek firmware that hard-
 *                                          crashed only comes back this way, bluetooth-auto-recovery #80)
 *   5. restart bluetoothd                 (a configured command, then wait for org.bluez)
 *
 * Each step is opt-in, bounded by its own deadline and logged. Recovery stops at the first step
 * after which the adapter is present and powered. A step that drops other connections (2, 4, 5)
 * names them before it acts. A step's cooldown starts when it is tried, also when it fails: the
 * Python original started the cooldown only on success, so a failing reset ran on every failure.
 * Cooldowns live in the ladder object, shared by every connection on the pool (the original's
 * were per call path), and "never" is an absent key, not a 0 timestamp.
 */
import { readdir, readFile, realpath, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fromPromise } from 'xstate';
import { AdapterError } from '../bluez/errors.js';
import { validateAdapterName } from '../bluez/validate.js';
import type { ResetInput } from '../machines/connection-contracts.js';
import {
  execFileRunner,
  systemClock,
  type CommandRunner,
  type LadderBluezPort,
  type LadderClock,
} from './reset-ladder-ports.js';

/** The ladder's steps, in the order they run. */
export type LadderStep =
  'stopDiscovery' | 'powerCycle' | 'rfkillUnblock' | 'usbReauthorize' | 'restartBluetoothd';

/** Steps in ladder order. */
export const LADDER_STEPS: readonly LadderStep[] = Object.freeze([
  'stopDiscovery',
  'powerCycle',
  'rfkillUnblock',
  'usbReauthorize',
  'restartBluetoothd',
]);

/** How one step ended. */
export type StepResult = 'ok' | 'failed' | 'cooldown' | 'disabled' | 'not-applicable';

/** One step of one ladder run. */
export interface StepOutcome {
  readonly step: LadderStep;
  readonly result: StepResult;
  readonly detail: string;
}

/** What one ladder run did. */
export interface LadderReport {
  readonly adapter: string;
  /** The adapter was present and powered after a recovering step. */
  readonly recovered: boolean;
  readonly steps: readonly StepOutcome[];
}

/** One log line of the ladder. */
export interface LadderLogEntry {
  readonly level: 'info' | 'warn' | 'error';
  readonly step: LadderStep;
  readonly adapter: string;
  readonly message: string;
  /** For "will drop connections" lines: the connections (`AA:BB:…@hciN`) about to be dropped. */
  readonly drops?: readonly string[];
}

/** Which steps run. Defaults: stop discovery and power cycle on, the system-level steps off. */
export interface LadderStepSwitches {
  stopDiscovery?: boolean;
  powerCycle?: boolean;
  rfkillUnblock?: boolean;
  usbReauthorize?: boolean;
  /** Needs {@link ResetLadderOptions.restartCommand}. */
  restartBluetoothd?: boolean;
}

/** Options of {@link ResetLadder}. Numbers are ms. */
export interface ResetLadderOptions {
  readonly bluez: LadderBluezPort;
  readonly steps?: LadderStepSwitches;
  /** Root of sysfs (default `/sys`); tests point it at a temp dir. */
  readonly sysfsRoot?: string;
  /** Directory of rfkill switches (default `<sysfsRoot>/class/rfkill`). */
  readonly rfkillDir?: string;
  /** Restart command as an argument array, e.g. `['systemctl', 'restart', 'bluetooth']` or `['/etc/init.d/bluetooth', 'restart']`. */
  readonly restartCommand?: readonly string[];
  readonly runCommand?: CommandRunner;
  readonly clock?: LadderClock;
  readonly log?: (entry: LadderLogEntry) => void;
  /** Deadline of each step (default 15 000). */
  readonly stepTimeoutMs?: number;
  /** Between two power cycles of one adapter (default 30 000, docs/defaults.md). */
  readonly powerCycleCooldownMs?: number;
  /** Between two USB re-authorizations of one adapter (default 300 000, docs/defaults.md). */
  readonly usbCooldownMs?: number;
  /** Between two bluetoothd restarts (default 300 000). */
  readonly restartCooldownMs?: number;
  /** Pause between Powered=false and Powered=true, and between `authorized` 0 and 1 (default 500). */
  readonly offSettleMs?: number;
  /** Pause after a recovering step before the adapter is used (default 2 000; the original's settle). */
  readonly settleMs?: number;
  /** How long to wait for the adapter (or org.bluez) to come back after USB/restart (default 15 000). */
  readonly returnTimeoutMs?: number;
}

type Resolved = Required<Omit<ResetLadderOptions, 'restartCommand' | 'steps' | 'log'>> & {
  restartCommand: readonly string[] | undefined;
  steps: Required<LadderStepSwitches>;
  log: (entry: LadderLogEntry) => void;
};

function nonNegative(value: unknown, field: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) {
    throw new RangeError(
      `resetLadder.${field} must be a finite number >= 0, got ${typeof value === 'number' ? value : JSON.stringify(value)}`,
    );
  }
  return value;
}

function resolveOptions(options: ResetLadderOptions): Resolved {
  if (typeof options !== 'object' || options === null)
    throw new TypeError('resetLadder options must be an object');
  if (typeof options.bluez !== 'object' || options.bluez === null) {
    throw new TypeError('resetLadder.bluez must be a LadderBluezPort (see ladderBluezPort)');
  }
  const steps: Required<LadderStepSwitches> = {
    stopDiscovery: true,
    powerCycle: true,
    rfkillUnblock: false,
    usbReauthorize: false,
    restartBluetoothd: false,
    ...options.steps,
  };
  for (const [key, value] of Object.entries(steps)) {
    if (typeof value !== 'boolean') throw new TypeError(`resetLadder.steps.${key} must be a boolean`);
  }
  const cmd = options.restartCommand;
  if (cmd !== undefined) {
    if (
      !Array.isArray(cmd) ||
      cmd.length === 0 ||
      !cmd.every((a) => typeof a === 'string') ||
      cmd[0] === ''
    ) {
      throw new TypeError(
        'resetLadder.restartCommand must be a non-empty array of strings (program first, no shell)',
      );
    }
  }
  if (steps.restartBluetoothd && cmd === undefined) {
    throw new TypeError('resetLadder.steps.restartBluetoothd needs resetLadder.restartCommand');
  }
  const sysfsRoot = options.sysfsRoot ?? '/sys';
  if (typeof sysfsRoot !== 'string' || sysfsRoot === '')
    throw new TypeError('resetLadder.sysfsRoot must be a path');
  return {
    bluez: options.bluez,
    steps,
    sysfsRoot,
    rfkillDir: options.rfkillDir ?? join(sysfsRoot, 'class', 'rfkill'),
    restartCommand: cmd,
    runCommand: options.runCommand ?? execFileRunner,
    clock: options.clock ?? systemClock,
    log: options.log ?? (() => {}),
    stepTimeoutMs: nonNegative(options.stepTimeoutMs, 'stepTimeoutMs', 15_000),
    powerCycleCooldownMs: nonNegative(options.powerCycleCooldownMs, 'powerCycleCooldownMs', 30_000),
    usbCooldownMs: nonNegative(options.usbCooldownMs, 'usbCooldownMs', 300_000),
    restartCooldownMs: nonNegative(options.restartCooldownMs, 'restartCooldownMs', 300_000),
    offSettleMs: nonNegative(options.offSettleMs, 'offSettleMs', 500),
    settleMs: nonNegative(options.settleMs, 'settleMs', 2000),
    returnTimeoutMs: nonNegative(options.returnTimeoutMs, 'returnTimeoutMs', 15_000),
  };
}

/** Thrown inside a step when it cannot apply (e.g. a UART adapter has no USB `authorized`). */
class NotApplicable extends Error {}

async function readTrimmed(path: string): Promise<string | undefined> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return undefined;
  }
}

/**
 * The recovery ladder with its per-adapter cooldowns. One per pool; concurrent runs for the same
 * adapter join the run already in flight (two devices escalating at once must not power-cycle twice).
 */
export class ResetLadder {
  readonly #o: Resolved;
  /** `step:adapter` → epoch ms of the last try (success or failure). */
  readonly #lastTried = new Map<string, number>();
  readonly #inFlight = new Map<string, Promise<LadderReport>>();

  /** Validates the options (TypeError/RangeError naming the field) before anything runs. */
  constructor(options: ResetLadderOptions) {
    this.#o = resolveOptions(options);
  }

  /** Epoch ms of the last try of `step` on `adapter` (`bluetoothd` for the restart), or undefined. */
  lastTried(step: LadderStep, adapter: string): number | undefined {
    return this.#lastTried.get(`${step}:${step === 'restartBluetoothd' ? 'bluetoothd' : adapter}`);
  }

  /** Runs the ladder for `adapter`. Rejects only on cancellation (`signal`); step failures are in the report. */
  run(adapter: string, signal: AbortSignal = new AbortController().signal): Promise<LadderReport> {
    validateAdapterName(adapter, 'adapter');
    const running = this.#inFlight.get(adapter);
    if (running !== undefined) return running;
    const run = this.#run(adapter, signal).finally(() => this.#inFlight.delete(adapter));
    this.#inFlight.set(adapter, run);
    return run;
  }

  async #run(adapter: string, signal: AbortSignal): Promise<LadderReport> {
    const steps: StepOutcome[] = [];
    let recovered = false;
    for (const step of LADDER_STEPS) {
      if (recovered) break;
      const outcome = await this.#runStep(step, adapter, signal);
      steps.push(outcome);
      if (outcome.result === 'ok' && step !== 'stopDiscovery') recovered = true;
    }
    const o = this.#o;
    if (recovered) {
      o.log({
        level: 'info',
        step: steps[steps.length - 1]?.step ?? 'powerCycle',
        adapter,
        message: `${adapter} recovered`,
      });
    } else {
      o.log({
        level: 'error',
        step: steps[steps.length - 1]?.step ?? 'restartBluetoothd',
        adapter,
        message: `${adapter} NOT recovered by the enabled ladder steps; manual intervention may be required`,
      });
    }
    return { adapter, recovered, steps };
  }

  async #runStep(step: LadderStep, adapter: string, signal: AbortSignal): Promise<StepOutcome> {
    const o = this.#o;
    if (!o.steps[step]) return { step, result: 'disabled', detail: 'not enabled' };
    const cooldownMs = this.#cooldownOf(step);
    const key = `${step}:${step === 'restartBluetoothd' ? 'bluetoothd' : adapter}`;
    const last = this.#lastTried.get(key);
    if (cooldownMs > 0 && last !== undefined && o.clock.now() - last < cooldownMs) {
      const detail = `in cooldown (${cooldownMs} ms since ${new Date(last).toISOString()})`;
      o.log({ level: 'info', step, adapter, message: `skipping ${step} on ${adapter}: ${detail}` });
      return { step, result: 'cooldown', detail };
    }
    // Bounded: the step gets its own deadline on top of the caller's cancellation.
    const deadline = new AbortController();
    const timer = setTimeout(
      () => deadline.abort(new DOMException(`${step} exceeded ${o.stepTimeoutMs} ms`, 'TimeoutError')),
      o.stepTimeoutMs,
    );
    const onAbort = (): void => deadline.abort(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    try {
      const detail = await this.#perform(step, adapter, deadline.signal, () => {
        // The cooldown starts when the disruptive action starts, whatever its outcome.
        if (cooldownMs > 0) this.#lastTried.set(key, o.clock.now());
      });
      o.log({ level: 'info', step, adapter, message: `${step} on ${adapter}: ${detail}` });
      return { step, result: 'ok', detail };
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      if (err instanceof NotApplicable) {
        o.log({
          level: 'info',
          step,
          adapter,
          message: `${step} on ${adapter}: not applicable (${err.message})`,
        });
        return { step, result: 'not-applicable', detail: err.message };
      }
      const detail = err instanceof Error ? err.message : String(err);
      o.log({ level: 'warn', step, adapter, message: `${step} on ${adapter} failed: ${detail}` });
      return { step, result: 'failed', detail };
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  #cooldownOf(step: LadderStep): number {
    switch (step) {
      case 'powerCycle':
        return this.#o.powerCycleCooldownMs;
      case 'usbReauthorize':
        return this.#o.usbCooldownMs;
      case 'restartBluetoothd':
        return this.#o.restartCooldownMs;
      default:
        return 0;
    }
  }

  /** Logs the connections a step is about to drop (docs/architecture.md) before it acts. */
  #announceDrops(step: LadderStep, adapter: string, scope: string | undefined): void {
    const drops = this.#o.bluez.connectedDevices(scope).map((d) => `${d.address}@${d.adapter}`);
    if (drops.length === 0) return;
    this.#o.log({
      level: 'warn',
      step,
      adapter,
      message: `${step} on ${adapter} will drop connections: ${drops.join(', ')}`,
      drops,
    });
  }

  async #verifyPowered(adapter: string, signal: AbortSignal): Promise<void> {
    const o = this.#o;
    await o.bluez.waitForAdapter(adapter, { timeoutMs: o.returnTimeoutMs, signal });
    await o.clock.sleep(o.settleMs, signal);
    if (o.bluez.powered(adapter) !== true) throw new Error(`${adapter} is not powered after settling`);
  }

  async #perform(
    step: LadderStep,
    adapter: string,
    signal: AbortSignal,
    startCooldown: () => void,
  ): Promise<string> {
    const o = this.#o;
    const call = { timeoutMs: o.stepTimeoutMs, signal };
    switch (step) {
      case 'stopDiscovery':
        if (o.bluez.powered(adapter) === undefined) throw new NotApplicable(`${adapter} is not present`);
        await o.bluez.stopDiscovery(adapter, call);
        return 'our discovery session stopped';
      case 'powerCycle': {
        if (o.bluez.powered(adapter) === undefined)
          throw new NotApplicable(`${adapter} is not present in BlueZ`);
        this.#announceDrops(step, adapter, adapter);
        startCooldown();
        await o.bluez.setPowered(adapter, false, call).catch((err: unknown) => {
          // An adapter that is already off (or refuses to go off) is still worth powering on.
          if (signal.aborted) throw err;
        });
        try {
          await o.clock.sleep(o.offSettleMs, signal);
          await o.bluez.setPowered(adapter, true, call);
        } catch (err) {
          // Cancelled or timed out between off and on: never leave the adapter powered off
          // (every device on it would be stuck). One bounded power-on that the caller cannot cancel.
          await o.bluez
            .setPowered(adapter, true, { timeoutMs: o.stepTimeoutMs, signal: new AbortController().signal })
            .catch(() => {});
          throw err;
        }
        await this.#verifyPowered(adapter, signal);
        return 'Powered false → true, verified';
      }
      case 'rfkillUnblock':
        return this.#rfkillUnblock(adapter, signal);
      case 'usbReauthorize': {
        const authorized = await this.#usbAuthorizedFile(adapter);
        this.#announceDrops(step, adapter, adapter);
        startCooldown();
        await writeFile(authorized, '0');
        try {
          await o.clock.sleep(o.offSettleMs, signal);
        } finally {
          // Also when cancelled: a de-authorized device stays unplugged until someone writes 1.
          await writeFile(authorized, '1');
        }
        // The adapter may come back under another hciN (bluetooth-auto-recovery 1.6.3); we wait
        // for the name we know and report the step failed otherwise.
        await this.#verifyPowered(adapter, signal);
        return `re-authorized ${dirname(authorized)}`;
      }
      case 'restartBluetoothd': {
        const [file, ...args] = o.restartCommand ?? [];
        if (file === undefined) throw new NotApplicable('no restartCommand configured');
        this.#announceDrops(step, adapter, undefined);
        startCooldown();
        const result = await o.runCommand(file, args, call);
        if (result.exitCode !== 0) {
          const why =
            result.signal !== null ? `killed by ${result.signal}` : `exit code ${String(result.exitCode)}`;
          throw new Error(
            `${[file, ...args].join(' ')} failed (${why}): ${result.stderr.trim() || result.stdout.trim()}`,
          );
        }
        await o.bluez.waitForBluez({ timeoutMs: o.returnTimeoutMs, signal });
        await this.#verifyPowered(adapter, signal);
        return `${[file, ...args].join(' ')} ran; org.bluez is back and ${adapter} is powered`;
      }
    }
  }

  async #rfkillUnblock(adapter: string, signal: AbortSignal): Promise<string> {
    const o = this.#o;
    let entries: string[];
    try {
      entries = await readdir(o.rfkillDir);
    } catch {
      throw new NotApplicable(`no rfkill directory ${o.rfkillDir}`);
    }
    for (const entry of entries.sort()) {
      const dir = join(o.rfkillDir, entry);
      if ((await readTrimmed(join(dir, 'name'))) !== adapter) continue;
      if ((await readTrimmed(join(dir, 'hard'))) === '1') {
        // Nothing software can do; the Python original only logged this and went on.
        throw new Error(
          `${adapter} is hard-blocked by rfkill (${entry}); a hardware switch or reboot is required`,
        );
      }
      if ((await readTrimmed(join(dir, 'soft'))) !== '1')
        throw new NotApplicable(`${adapter} is not soft-blocked`);
      await writeFile(join(dir, 'soft'), '0');
      await o.clock.sleep(o.offSettleMs, signal);
      if ((await readTrimmed(join(dir, 'soft'))) !== '0')
        throw new Error(`${entry}/soft did not change to 0`);
      await o.bluez.setPowered(adapter, true, { timeoutMs: o.stepTimeoutMs, signal });
      await this.#verifyPowered(adapter, signal);
      return `soft block cleared (${entry}) and powered on`;
    }
    throw new NotApplicable(`no rfkill switch named ${adapter}`);
  }

  /** `<usb device>/authorized` of the adapter, or NotApplicable for UART/SDIO controllers. */
  async #usbAuthorizedFile(adapter: string): Promise<string> {
    let iface: string;
    try {
      iface = await realpath(join(this.#o.sysfsRoot, 'class', 'bluetooth', adapter, 'device'));
    } catch {
      throw new NotApplicable(`no sysfs device link for ${adapter}`);
    }
    // A USB interface is named <bus>-<port path>:<config>.<interface>, e.g. 1-1.2:1.0.
    if (!/^\d+-[\d.]+:\d+\.\d+$/.test(basename(iface))) {
      throw new NotApplicable(`${adapter} is not a USB device (${basename(iface)})`);
    }
    const authorized = join(dirname(iface), 'authorized');
    if ((await readTrimmed(authorized)) === undefined) throw new NotApplicable(`no ${authorized}`);
    return authorized;
  }
}

/**
 * The `resetAdapter` actor for the connection machine: runs the ladder and rejects with an
 * {@link AdapterError} (`RESET_FAILED`) when the adapter was not recovered. The machine starts the
 * escalation cooldown either way.
 */
export function resetLadderActor(ladder: ResetLadder) {
  return fromPromise<void, ResetInput>(async ({ input, signal }) => {
    const report = await ladder.run(input.adapter, signal);
    if (!report.recovered) {
      const summary = report.steps.map((s) => `${s.step}: ${s.result} (${s.detail})`).join('; ');
      throw new AdapterError(
        `${input.adapter} was not recovered: ${summary}`,
        {
          adapter: input.adapter,
          advice:
            'Enable more ladder steps (rfkillUnblock, usbReauthorize, restartBluetoothd with a restartCommand), ' +
            'or check the controller: dmesg for HCI timeouts, replug the dongle.',
        },
        'RESET_FAILED',
      );
    }
  });
}

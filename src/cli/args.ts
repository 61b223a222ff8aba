/**
 * Argument handling shared by the `bluez-cm` commands: node:util parseArgs in strict mode, plus
 * checks that name the flag. A usage mistake exits 2 with the message and the command's help,
 * before anything is started.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { validateAuthMethods, type DBusAuthMethod } from '../bluez/bus.js';

export type { DBusAuthMethod };

/** A mistake on the command line; the message names the flag or argument. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parsed values: strings, booleans or arrays of strings, by flag name. */
export type FlagValues = Record<string, string | boolean | Array<string | boolean> | undefined>;

/** parseArgs, with node's messages turned into UsageErrors. */
export function parseFlags(
  args: readonly string[],
  options: Options,
  allowPositionals = false,
): { values: FlagValues; positionals: string[] } {
  try {
    const { values, positionals } = parseArgs({
      args: [...args],
      options,
      strict: true,
      allowPositionals,
    });
    return { values: values, positionals };
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

/** A string flag's value (undefined when absent). */
export function stringFlag(values: FlagValues, name: string): string | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw new UsageError(`--${name} needs a value`);
  return v;
}

/** A numeric flag within [min, max]; `integer` demands a whole number. */
export function numberFlag(
  values: FlagValues,
  name: string,
  limits: { min: number; max?: number; integer?: boolean; exclusiveMin?: boolean },
): number | undefined {
  const raw = stringFlag(values, name);
  if (raw === undefined) return undefined;
  const n = raw.trim() === '' ? Number.NaN : Number(raw);
  const max = limits.max ?? Number.MAX_SAFE_INTEGER;
  const tooLow = limits.exclusiveMin === true ? n <= limits.min : n < limits.min;
  if (!Number.isFinite(n) || tooLow || n > max || (limits.integer === true && !Number.isInteger(n))) {
    const kind = limits.integer === true ? 'an integer' : 'a number';
    const low = limits.exclusiveMin === true ? `> ${limits.min}` : `>= ${limits.min}`;
    const high = limits.max === undefined ? '' : ` and <= ${limits.max}`;
    throw new UsageError(`--${name} must be ${kind} ${low}${high} (got "${raw}")`);
  }
  return n;
}

/**
 * Reports a usage error (exit 2) or rethrows anything else. Only the mistake and the command's
 * usage line are printed (the first paragraph of `help`), with a pointer to `--help`: a wall of
 * help text hides the one line that says what was wrong.
 */
export function usageFailure(command: string, error: unknown, help: string): number {
  if (!(error instanceof UsageError)) throw error;
  const synopsis = help.split(/\n\s*\n/)[0]?.trim() ?? '';
  process.stderr.write(
    `bluez-cm ${command}: ${error.message}\n${synopsis}\n(bluez-cm ${command} --help for every option)\n`,
  );
  return 2;
}

/** Resolves on the first SIGINT or SIGTERM; `dispose` removes the handlers. */
export function onStopSignal(): {
  signal: AbortSignal;
  received: () => NodeJS.Signals | null;
  dispose(): void;
} {
  const controller = new AbortController();
  let received: NodeJS.Signals | null = null;
  const handler = (s: NodeJS.Signals): void => {
    received = s;
    controller.abort(new DOMException(`${s} received`, 'AbortError'));
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    received: () => received,
    dispose() {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}

/** Help text of the `--dbus-auth` flag, shared by the commands that open the system bus. */
export const DBUS_AUTH_HELP = `      --dbus-auth M,M  D-Bus auth mechanisms to try, in order: EXTERNAL, ANONYMOUS,
                       DBUS_COOKIE_SHA1 (env BLUEZ_CM_DBUS_AUTH; default ANONYMOUS
                       for a tcp: DBUS_SYSTEM_BUS_ADDRESS, EXTERNAL first for unix:)`;

/**
 * The D-Bus auth mechanisms chosen on the command line (`--dbus-auth`, comma-separated) or, when
 * the flag is absent, in `BLUEZ_CM_DBUS_AUTH`; undefined leaves the library's default.
 * @throws UsageError naming the flag or variable for an unknown, repeated or empty mechanism
 */
export function authMethodsFlag(
  values: FlagValues,
  env: NodeJS.ProcessEnv = process.env,
): readonly DBusAuthMethod[] | undefined {
  const fromFlag = stringFlag(values, 'dbus-auth');
  const raw = fromFlag ?? env.BLUEZ_CM_DBUS_AUTH;
  if (raw === undefined || (fromFlag === undefined && raw.trim() === '')) return undefined;
  const field = fromFlag === undefined ? 'BLUEZ_CM_DBUS_AUTH' : '--dbus-auth';
  const methods = raw
    .split(',')
    .map((m) => m.trim().toUpperCase())
    .filter((m) => m.length > 0);
  try {
    return validateAuthMethods(methods, field);
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
}

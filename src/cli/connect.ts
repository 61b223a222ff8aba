/**
 * `bluez-cm connect <MAC>`: one managed connection on the system bus (or DBUS_SYSTEM_BUS_ADDRESS)
 * with the connection actor's states printed live. It stays connected, reconnects after a link
 * loss, and disconnects cleanly (verified disconnect) on Ctrl-C/SIGTERM; Ctrl-C while connecting
 * cancels through the machine's cancellation path, which leaves no half-open link behind.
 */
import type { InspectionEvent } from 'xstate';
import {
  createConnectionActor,
  isAbortError,
  openBluez,
  type BluezClient,
  type ConnectionActor,
  type ConnectionAttempt,
  type EscalationProfileName,
} from '../index.js';
import {
  connectionMachine,
  validateAdapterName,
  validateMac,
  type ConnectionContext,
} from '../machines/index.js';
import {
  DBUS_AUTH_HELP,
  UsageError,
  authMethodsFlag,
  numberFlag,
  onStopSignal,
  parseFlags,
  stringFlag,
  usageFailure,
  type DBusAuthMethod,
} from './args.js';
import { inspectHint, startCliInspector, type CliInspector } from './inspect.js';

const HELP = `usage: bluez-cm connect <MAC> [--adapter hciN ...] [--timeout-ms N] [--attempts N]
                        [--profile battery|sensor|onDemand] [--close-inactive]
                        [--lock] [--scan-lock] [--lock-dir DIR] [--listen]
                        [--dbus-auth M,M] [--json] [--inspect [--inspect-port N]]

Connects one device through BlueZ on the system bus (DBUS_SYSTEM_BUS_ADDRESS is
respected: point it at \`bluez-cm sim\` to try without hardware), prints the
connection actor's states as they change, stays connected (reconnecting after a
link loss), and disconnects cleanly on Ctrl-C. Exit 0 after a clean disconnect,
1 when the device could not be connected, 2 for bad arguments, 130 when
interrupted while connecting.

  -a, --adapter hciN   use this adapter (repeat for a rotation order); default:
                       every adapter, those that already know the device first
  -t, --timeout-ms N   give up connecting after N ms (overallTimeoutMs)
      --attempts N     attempts before giving up (default 4)
      --profile P      escalation profile: battery, sensor, onDemand
      --close-inactive disconnect and remove a phantom connection of this device
      --lock           take a cross-process connection slot per attempt (the Python
                       library's DIR/bleak-cm-{adapter}-slot-{slot}.lock, 2 slots)
      --scan-lock      hold DIR/bleak-cm-{adapter}-scan.lock around our discovery
      --lock-dir DIR   lock directory (default /run)
      --listen         never start discovery: wait for another process's (an owner)
                       (off by default: another process may own that link)
${DBUS_AUTH_HELP}
      --json           JSON lines instead of text
      --inspect        show the connection actor live in the Stately inspector:
                       prints the page to open (http://localhost:8080, or
                       --inspect-port N; needs the
                       package @statelyai/inspect)
  -h, --help           this text
`;

interface ConnectArgs {
  address: string;
  adapters: string[] | undefined;
  overallTimeoutMs: number | undefined;
  maxAttempts: number | undefined;
  profile: EscalationProfileName | undefined;
  closeInactive: boolean;
  authMethods: readonly DBusAuthMethod[] | undefined;
  lock: boolean;
  scanLock: boolean;
  lockDir: string;
  listen: boolean;
  json: boolean;
  inspect: boolean;
  inspectPort: number | undefined;
}

const PROFILES: readonly EscalationProfileName[] = ['battery', 'sensor', 'onDemand'];

function parse(args: string[]): ConnectArgs | 'help' {
  const { values, positionals } = parseFlags(
    args,
    {
      adapter: { type: 'string', short: 'a', multiple: true },
      'timeout-ms': { type: 'string', short: 't' },
      attempts: { type: 'string' },
      profile: { type: 'string' },
      'close-inactive': { type: 'boolean' },
      'dbus-auth': { type: 'string' },
      lock: { type: 'boolean' },
      'scan-lock': { type: 'boolean' },
      'lock-dir': { type: 'string' },
      listen: { type: 'boolean' },
      json: { type: 'boolean' },
      inspect: { type: 'boolean' },
      'inspect-port': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    true,
  );
  if (values.help === true) return 'help';
  if (positionals.length === 0)
    throw new UsageError('<MAC> is missing (e.g. bluez-cm connect C8:47:8C:00:00:01)');
  if (positionals.length > 1) throw new UsageError(`one <MAC> only (got ${positionals.join(' ')})`);
  let address: string;
  try {
    address = validateMac(positionals[0], '<MAC>');
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const raw = values.adapter;
  const adapters = Array.isArray(raw)
    ? raw.map((a) => {
        try {
          return validateAdapterName(a, '--adapter');
        } catch (e) {
          throw new UsageError((e as Error).message);
        }
      })
    : undefined;
  if (adapters !== undefined && new Set(adapters).size !== adapters.length) {
    throw new UsageError('--adapter must not repeat an adapter');
  }
  const profile = stringFlag(values, 'profile');
  if (profile !== undefined && !PROFILES.includes(profile as EscalationProfileName)) {
    throw new UsageError(`--profile must be one of ${PROFILES.join(', ')} (got "${profile}")`);
  }
  const lockDir = stringFlag(values, 'lock-dir') ?? '/run';
  if (!lockDir.startsWith('/')) throw new UsageError(`--lock-dir must be an absolute path, got "${lockDir}"`);
  return {
    address,
    adapters,
    overallTimeoutMs: numberFlag(values, 'timeout-ms', { min: 1, integer: true }),
    maxAttempts: numberFlag(values, 'attempts', { min: 1, max: 100, integer: true }),
    profile: profile as EscalationProfileName | undefined,
    closeInactive: values['close-inactive'] === true,
    authMethods: authMethodsFlag(values),
    lock: values.lock === true,
    scanLock: values['scan-lock'] === true,
    lockDir,
    listen: values.listen === true,
    json: values.json === true,
    inspect: values.inspect === true,
    inspectPort: numberFlag(values, 'inspect-port', { min: 1, max: 65535, integer: true }),
  };
}

function describeAttempt(a: ConnectionAttempt): string {
  const how = a.cause === null ? a.outcome : `${a.cause.class}: ${a.cause.message}`;
  return `#${a.number} on ${a.adapter}: ${how}${a.escalation ? ` → ${a.escalation}` : ''}`;
}

interface SnapshotLike {
  value?: unknown;
  status?: string;
  context?: ConnectionContext;
  machine?: { id?: string };
}

function statePath(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'object' && value !== null) {
    const [key, inner] = Object.entries(value)[0] ?? [];
    if (key === undefined) return '';
    // `establishing` only frames the steps of a run (src/machines/state-trail.ts): show the step.
    if (key === 'establishing') return statePath(inner);
    return [key, statePath(inner)].filter(Boolean).join('.');
  }
  return '';
}

/** Waits (bounded by the signal) until the actor's snapshot satisfies `done`. */
function waitForState(
  actor: ConnectionActor,
  done: (s: ReturnType<ConnectionActor['getSnapshot']>) => boolean,
  signal?: AbortSignal,
): Promise<boolean> {
  return new Promise((resolve) => {
    const finish = (value: boolean): void => {
      sub.unsubscribe();
      signal?.removeEventListener('abort', onAbort);
      resolve(value);
    };
    const onAbort = (): void => finish(false);
    const sub = actor.subscribe({
      next: (s) => {
        if (done(s)) finish(true);
      },
      complete: () => finish(done(actor.getSnapshot())),
      error: () => finish(false),
    });
    signal?.addEventListener('abort', onAbort, { once: true });
    if (done(actor.getSnapshot())) finish(true);
  });
}

export async function run(args: string[]): Promise<number> {
  let options: ConnectArgs;
  try {
    const parsed = parse(args);
    if (parsed === 'help') {
      process.stdout.write(HELP);
      return 0;
    }
    options = parsed;
  } catch (e) {
    return usageFailure('connect', e, HELP);
  }

  const t0 = Date.now();
  const emit = (record: Record<string, unknown>, text: string): void => {
    if (options.json) process.stdout.write(`${JSON.stringify({ t: Date.now() - t0, ...record })}\n`);
    else process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(2).padStart(6)}s] ${text}\n`);
  };
  const fail = (message: string, record: Record<string, unknown> = {}): void => {
    if (options.json)
      process.stdout.write(`${JSON.stringify({ t: Date.now() - t0, type: 'error', message, ...record })}\n`);
    process.stderr.write(`bluez-cm connect: ${message}\n`);
  };

  const stop = onStopSignal();
  // A second Ctrl-C ends at once (everything below is bounded, but a person may not want to wait).
  let interrupts = 0;
  const onSecond = (): void => {
    interrupts += 1;
    if (interrupts >= 2) process.exit(130);
  };
  process.on('SIGINT', onSecond);

  let bluez: BluezClient | undefined;
  let actor: ConnectionActor | undefined;
  let inspector: CliInspector | undefined;
  try {
    if (options.inspect) {
      try {
        inspector = await startCliInspector(options.inspectPort);
      } catch (e) {
        return usageFailure('connect', e, HELP);
      }
      if (options.json)
        process.stdout.write(`${JSON.stringify({ t: 0, type: 'inspector', url: inspector.url })}\n`);
      else process.stderr.write(inspectHint('connect', inspector));
    }
    const bus = process.env.DBUS_SYSTEM_BUS_ADDRESS ?? 'the system bus';
    bluez = await openBluez({
      signal: stop.signal,
      openTimeoutMs: 10_000,
      authMethods: options.authMethods,
    });
    if (!bluez.mirror.bluezReady) {
      emit({ type: 'waiting', bus }, `org.bluez is not on ${bus}; waiting up to 10 s for bluetoothd…`);
      try {
        await bluez.waitForBluez({ timeoutMs: 10_000, signal: stop.signal });
      } catch (e) {
        if (stop.received() !== null) return 130;
        fail(
          `org.bluez did not appear on ${bus} (${(e as Error).message}): is bluetoothd running? (systemctl status bluetooth)`,
        );
        return 1;
      }
    }

    let lastState = '';
    const inspect = (event: InspectionEvent): void => {
      inspector?.inspect(event);
      if (event.type !== '@xstate.microstep' && event.type !== '@xstate.snapshot') return;
      const snapshot = event.snapshot as SnapshotLike;
      if (snapshot.machine?.id !== connectionMachine.id || snapshot.context === undefined) return;
      const state = statePath(snapshot.value);
      if (state === '' || state === lastState) return;
      const from = lastState;
      lastState = state;
      const context = snapshot.context;
      const attempt = context.attempts.length;
      const last = context.attempts[attempt - 1];
      const cause =
        state === 'escalating' && last?.cause ? ` — ${last.cause.class}: ${last.cause.message}` : '';
      emit(
        { type: 'state', from: from || null, to: state, adapter: context.adapter, attempt },
        `${state.padEnd(36)} ${context.adapter}${attempt > 0 ? `  attempt ${attempt}` : ''}${cause}`,
      );
    };

    try {
      actor = createConnectionActor({
        bluez,
        address: options.address,
        ...(options.adapters === undefined ? {} : { adapters: options.adapters }),
        ...(options.overallTimeoutMs === undefined ? {} : { overallTimeoutMs: options.overallTimeoutMs }),
        ...(options.maxAttempts === undefined ? {} : { maxAttempts: options.maxAttempts }),
        ...(options.profile === undefined ? {} : { escalation: options.profile }),
        closeInactiveConnections: options.closeInactive,
        ...(options.lock ? { lock: { dir: options.lockDir } } : {}),
        discovery: {
          ...(options.scanLock ? { scanLock: { dir: options.lockDir } } : {}),
          mode: options.listen ? 'listen' : 'scan',
        },
        signal: stop.signal,
        inspect,
        logger: {
          warn: (_fields, message) => emit({ type: 'log', level: 'warn', message }, `warn: ${message}`),
          info: (_fields, message) => emit({ type: 'log', level: 'info', message }, `info: ${message}`),
        },
      });
    } catch (e) {
      if (e instanceof TypeError || e instanceof RangeError) {
        fail(e.message.replace(/^adapters\[\d+\]/, '--adapter'));
        return 2;
      }
      throw e;
    }
    const running = actor;
    running.on('link-lost', (e) =>
      emit(
        { type: 'link-lost', adapter: e.adapter, reason: e.reason },
        `link lost on ${e.adapter}: ${e.reason}; reconnecting`,
      ),
    );

    // Keep-alive: after a link loss the actor rests in idle; connect again until stopped.
    for (;;) {
      running.send({ type: 'CONNECT' });
      const settled = await waitForState(running, (s) => s.status !== 'active' || s.value === 'connected');
      const snapshot = running.getSnapshot();
      if (!settled || snapshot.status !== 'active') {
        const error = snapshot.status === 'done' ? snapshot.output.error : snapshot.error;
        const attempts = snapshot.context.attempts;
        if (stop.received() !== null || isAbortError(error)) {
          fail(`interrupted while connecting ${options.address}; nothing left connected`);
          return 130;
        }
        const message = error instanceof Error ? error.message : String(error);
        const advice = (error as { advice?: unknown } | undefined)?.advice;
        fail(`${options.address} not connected: ${message}`, {
          code: (error as { code?: unknown } | undefined)?.code ?? null,
          attempts: attempts.map(describeAttempt),
        });
        if (!options.json) {
          for (const a of attempts) process.stderr.write(`  ${describeAttempt(a)}\n`);
          if (typeof advice === 'string') process.stderr.write(`  advice: ${advice}\n`);
        }
        return 1;
      }
      const attempts = snapshot.context.attempts;
      emit(
        {
          type: 'connected',
          address: options.address,
          adapter: snapshot.context.adapter,
          attempts: attempts.map(describeAttempt),
        },
        `connected to ${options.address} on ${snapshot.context.adapter} after ${attempts.length} attempt${attempts.length === 1 ? '' : 's'}; Ctrl-C disconnects`,
      );
      // Connected until the link drops (back to idle) or the user stops us.
      const lost = await waitForState(running, (s) => s.value !== 'connected', stop.signal);
      if (!lost) break;
      if (running.getSnapshot().status !== 'active') break;
    }

    emit(
      { type: 'disconnecting', address: options.address },
      `${stop.received() ?? 'stop'}: disconnecting ${options.address} (verified)`,
    );
    if (running.getSnapshot().value === 'connected') {
      running.send({ type: 'DISCONNECT' });
      await waitForState(running, (s) => s.status !== 'active' || s.value === 'idle');
    }
    const device = bluez.device(running.getSnapshot().context.adapter, options.address);
    emit(
      { type: 'disconnected', address: options.address, connected: device?.connected ?? false },
      `disconnected (BlueZ reports Connected=${device?.connected ?? false})`,
    );
    return 0;
  } catch (e) {
    if (stop.received() !== null || isAbortError(e)) {
      fail('interrupted');
      return 130;
    }
    fail(e instanceof Error ? e.message : String(e));
    return 1;
  } finally {
    actor?.stop();
    await bluez?.close();
    inspector?.stop();
    process.off('SIGINT', onSecond);
    stop.dispose();
  }
}

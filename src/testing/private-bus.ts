/**
 * A private, system-bus-like dbus-daemon for tests and `bluez-cm sim`.
 *
 * Why a wrapper shell: a test runner that is SIGKILLed (vitest timeout, CI
 * cancel, OOM) never runs its cleanup, and a dbus-daemon started with --fork
 * would outlive it. Each daemon therefore runs under a tiny `sh` watchdog whose
 * stdin is a pipe held only by this Node process: when this process exits for
 * any reason the pipe reaches EOF, and the watchdog kills the daemon and
 * removes its socket directory. No polling, no native addon.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import {
  accessSync,
  constants as fsConstants,
  mkdirSync,
  mkdtempSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, isAbsolute, join } from 'node:path';

/** Options of {@link startPrivateBus}. */
export interface PrivateBusOptions {
  /** Directory in which a fresh sub-directory holds the socket and config. Default: the OS temp dir. */
  socketDir?: string;
  /**
   * The dbus-daemon executable: an absolute path, or a name looked up on PATH.
   * Default `dbus-daemon`.
   */
  dbusDaemon?: string;
  /** How long to wait for the daemon to announce its address. Default 10 000 ms. */
  startTimeoutMs?: number;
  /**
   * Also listen on TCP (127.0.0.1, a free port) with ANONYMOUS auth, like a remote gateway's or a
   * VM's bus; its address is {@link PrivateBus.tcpAddress}. Default false.
   */
  tcp?: boolean;
  /**
   * `<limit name="…">` entries of the daemon's configuration, e.g. `{ max_replies_per_connection: 128 }`
   * (names as in dbus-daemon(1)). Unset limits keep dbus-daemon's built-in defaults, which are the
   * stock system bus's (dbus's bus/config-parser.c: 128 replies and 512 match rules per connection).
   */
  limits?: Readonly<Record<string, number>>;
}

/** A running private dbus-daemon. */
export interface PrivateBus {
  /** `unix:path=…` without a guid, so it stays valid across {@link PrivateBus.restart}. */
  readonly address: string;
  /** The listening socket's file path. */
  readonly socketPath: string;
  /**
   * `tcp:host=127.0.0.1,port=…` (ANONYMOUS auth) when started with `tcp: true`, else undefined.
   * The port is chosen by the daemon, so it changes on {@link PrivateBus.restart}.
   */
  readonly tcpAddress: string | undefined;
  /** Process id of the current dbus-daemon (changes on restart). */
  readonly pid: number;
  /** Stops the daemon and removes its directory. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILLs the daemon and removes the socket, as if the system bus crashed. */
  kill(): Promise<void>;
  /** Starts a new daemon at the same address (after {@link PrivateBus.kill} or while running). */
  restart(): Promise<void>;
}

/** dbus-daemon is not installed (or the configured path is not executable). */
export class DbusDaemonNotFoundError extends Error {
  /** Stable code for programmatic checks. */
  readonly code = 'DBUS_DAEMON_NOT_FOUND';
  constructor(readonly looked: string) {
    super(
      `dbus-daemon was not found (${looked}). The private test bus needs it: ` +
        `install the Debian/Ubuntu package "dbus" (sudo apt-get install dbus), ` +
        `or pass the binary's path as the dbusDaemon option.`,
    );
    this.name = 'DbusDaemonNotFoundError';
  }
}

/** The daemon started but did not come up (bad config, socket path too long, timeout). */
export class PrivateBusStartError extends Error {
  /** Stable code for programmatic checks. */
  readonly code = 'PRIVATE_BUS_START_FAILED';
  constructor(message: string) {
    super(message);
    this.name = 'PrivateBusStartError';
  }
}

// The watchdog. $1 daemon binary, $2 config file, $3 directory to remove.
// The daemon's stdin is /dev/null so it never holds our pipe open itself.
const WATCHDOG = [
  '"$1" --nofork --config-file="$2" --print-address=1 --print-pid=1 </dev/null &',
  'd=$!',
  // EOF on stdin = the Node process closed the pipe or died.
  'while read -r _l; do :; done',
  'kill -TERM "$d" 2>/dev/null',
  'wait "$d" 2>/dev/null',
  'rm -rf "$3"',
].join('\n');

// Unix socket paths are limited to 108 bytes (sun_path).
const MAX_SOCKET_PATH = 107;

// A TCP listener has no peer credentials, so EXTERNAL cannot work there; ANONYMOUS is what a test
// VM's or container's bus offers (dbus-daemon's <allow_anonymous/>, see dbus-daemon(1)).
const TCP_LISTENER = `  <listen>tcp:host=127.0.0.1,port=0</listen>
  <auth>ANONYMOUS</auth>
  <allow_anonymous/>
`;

function limitLines(limits: Readonly<Record<string, number>>): string {
  return Object.entries(limits)
    .map(([name, value]) => `  <limit name="${name}">${value}</limit>\n`)
    .join('');
}

function busConfig(socketPath: string, tcp: boolean, limits: Readonly<Record<string, number>> = {}): string {
  // <type>system</type> so clients see the same limits/semantics as the system bus.
  // The policy is wide open because the bus is private to one test: anyone may own
  // org.bluez and talk to anyone. Debug.Stats is listed explicitly because leak tests
  // count match rules and connections with GetConnectionStats/GetAllMatchRules (the
  // daemon additionally requires the caller to run as the daemon's uid, which it does).
  return `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=${socketPath}</listen>
  <auth>EXTERNAL</auth>
${tcp ? TCP_LISTENER : ''}  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
${limitLines(limits)}</busconfig>
`;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function validateLimits(limits: unknown): Readonly<Record<string, number>> | undefined {
  if (limits === undefined) return undefined;
  if (typeof limits !== 'object' || limits === null) {
    throw new TypeError('startPrivateBus: limits must be an object like { max_replies_per_connection: 128 }');
  }
  for (const [name, value] of Object.entries(limits)) {
    if (!/^[a-z_]+$/.test(name)) throw new RangeError(`startPrivateBus: limits.${name} is not a limit name`);
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
      throw new RangeError(`startPrivateBus: limits.${name} must be an integer >= 0, got ${String(value)}`);
    }
  }
  return limits as Readonly<Record<string, number>>;
}

/** Resolves the daemon binary or throws {@link DbusDaemonNotFoundError}. */
export function findDbusDaemon(binary = 'dbus-daemon', path = process.env.PATH ?? ''): string {
  if (binary.includes('/')) {
    const abs = isAbsolute(binary) ? binary : join(process.cwd(), binary);
    if (isExecutable(abs)) return abs;
    throw new DbusDaemonNotFoundError(`${abs} is not an executable file`);
  }
  const dirs = path.split(delimiter).filter((d) => d.length > 0);
  for (const dir of dirs) {
    const candidate = join(dir, binary);
    if (isExecutable(candidate)) return candidate;
  }
  throw new DbusDaemonNotFoundError(`"${binary}" is not on PATH=${path || '(empty)'}`);
}

interface Running {
  child: ChildProcess;
  daemonPid: number;
  /** The daemon's TCP address without its guid, when it listens on TCP. */
  tcpAddress: string | undefined;
  exited: Promise<void>;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

const delay = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function launch(
  daemon: string,
  dir: string,
  socketPath: string,
  startTimeoutMs: number,
  tcp: boolean,
  limits?: Readonly<Record<string, number>>,
): Promise<Running> {
  mkdirSync(dir, { recursive: true });
  const configPath = join(dir, 'bus.conf');
  writeFileSync(configPath, busConfig(socketPath, tcp, limits));
  try {
    unlinkSync(socketPath); // a SIGKILLed daemon leaves its socket file behind
  } catch {
    // not there
  }
  const child = spawn('/bin/sh', ['-c', WATCHDOG, 'bluez-cm-bus-watchdog', daemon, configPath, dir], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8');
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    if (err.length < 4000) err += d;
  });
  const lines = await new Promise<string[]>((resolve, reject) => {
    const timer = setTimeout(() => {
      finish();
      reject(
        new PrivateBusStartError(
          `dbus-daemon did not start within ${startTimeoutMs} ms. stderr: ${err.trim()}`,
        ),
      );
    }, startTimeoutMs);
    const onData = (d: string) => {
      out += d;
      const got = out.split('\n').filter((l) => l.length > 0);
      if (got.length >= 2) {
        finish();
        resolve(got);
      }
    };
    const onExit = (code: number | null) => {
      finish();
      reject(
        new PrivateBusStartError(`dbus-daemon exited during start (code ${code}). stderr: ${err.trim()}`),
      );
    };
    const finish = () => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.off('exit', onExit);
    };
    child.stdout?.on('data', onData);
    child.once('exit', onExit);
  }).catch(async (e: unknown) => {
    child.stdin?.end();
    tryKill(child.pid ?? -1, 'SIGKILL');
    await exited;
    throw e;
  });
  // Keep draining so the daemon never blocks on a full pipe.
  child.stdout?.resume();
  const daemonPid = Number(lines[1]);
  if (!Number.isInteger(daemonPid) || daemonPid <= 0) {
    throw new PrivateBusStartError(`dbus-daemon printed an unexpected pid line: ${JSON.stringify(lines[1])}`);
  }
  // A forgotten bus must not keep the test process alive; when the process exits,
  // the watchdog sees EOF and cleans up.
  child.unref();
  for (const s of [child.stdin, child.stdout, child.stderr]) {
    (s as unknown as { unref?: () => void } | null)?.unref?.();
  }
  // --print-address prints every listener's address, `;`-separated, each with its guid.
  const tcpEntry = lines[0]?.split(';').find((a) => a.startsWith('tcp:'));
  const tcpAddress = tcpEntry
    ?.split(',')
    .filter((kv) => !kv.startsWith('guid=') && !kv.startsWith('family='))
    .join(',');
  return { child, daemonPid, exited, tcpAddress };
}

async function shutdown(run: Running, signal: NodeJS.Signals): Promise<void> {
  run.child.ref();
  tryKill(run.daemonPid, signal);
  run.child.stdin?.end();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const done = await Promise.race([
    run.exited.then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), 3000);
    }),
  ]);
  clearTimeout(timer);
  if (!done) {
    tryKill(run.daemonPid, 'SIGKILL');
    tryKill(run.child.pid ?? -1, 'SIGKILL');
    await run.exited;
  }
  // The watchdog waited for the daemon, so it is reaped; double-check before returning.
  for (let i = 0; i < 50 && pidAlive(run.daemonPid); i++) await delay(20);
}

/**
 * Starts a private dbus-daemon configured like the system bus (type system,
 * EXTERNAL auth, unix socket in a fresh temp dir) but with an open policy.
 *
 * @throws DbusDaemonNotFoundError when dbus-daemon is missing (Debian package `dbus`).
 */
export async function startPrivateBus(opts: PrivateBusOptions = {}): Promise<PrivateBus> {
  if (opts.socketDir !== undefined && typeof opts.socketDir !== 'string') {
    throw new TypeError('startPrivateBus: socketDir must be a string path');
  }
  const startTimeoutMs = opts.startTimeoutMs ?? 10_000;
  if (opts.tcp !== undefined && typeof opts.tcp !== 'boolean') {
    throw new TypeError('startPrivateBus: tcp must be a boolean');
  }
  const tcp = opts.tcp === true;
  const limits = validateLimits(opts.limits);
  if (!Number.isFinite(startTimeoutMs) || startTimeoutMs <= 0) {
    throw new RangeError('startPrivateBus: startTimeoutMs must be a positive number of milliseconds');
  }
  const daemon = findDbusDaemon(opts.dbusDaemon ?? 'dbus-daemon');
  const base = opts.socketDir ?? tmpdir();
  mkdirSync(base, { recursive: true });
  const dir = mkdtempSync(join(base, 'bluez-cm-bus-'));
  const socketPath = join(dir, 'bus');
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    rmSync(dir, { recursive: true, force: true });
    throw new RangeError(`startPrivateBus: socketDir is too long for a unix socket path (${socketPath})`);
  }
  let run: Running | undefined;
  try {
    run = await launch(daemon, dir, socketPath, startTimeoutMs, tcp, limits);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  let stopped = false;
  const bus: PrivateBus = {
    address: `unix:path=${socketPath}`,
    socketPath,
    get tcpAddress() {
      return run?.tcpAddress;
    },
    get pid() {
      return run?.daemonPid ?? -1;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      const r = run;
      run = undefined;
      if (r) await shutdown(r, 'SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
    async kill() {
      const r = run;
      run = undefined;
      if (r) await shutdown(r, 'SIGKILL');
      rmSync(socketPath, { force: true });
    },
    async restart() {
      if (stopped) throw new Error('PrivateBus.restart: the bus was stopped');
      const r = run;
      run = undefined;
      if (r) await shutdown(r, 'SIGTERM');
      run = await launch(daemon, dir, socketPath, startTimeoutMs, tcp, limits);
    },
  };
  return bus;
}

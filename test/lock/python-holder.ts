/**
 * A Python service holding lock files the way the Python library does: os.open(O_RDWR|O_CREAT,
 * 0o666) and fcntl.flock(LOCK_EX|LOCK_NB) (retrying every interval until it gets one of the
 * files), then, if asked, a D-Bus Connect through dbus-send while it holds the slot.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

const SCRIPT = String.raw`
import fcntl, os, sys, time, subprocess, json
paths = json.loads(sys.argv[1])
hold_s = float(sys.argv[2])
connect = json.loads(sys.argv[3])
fds = []
while True:
    got = None
    for p in paths:
        fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            got = (p, fd)
            break
        except BlockingIOError:
            os.close(fd)
    if got:
        break
    time.sleep(0.02)
print("held " + got[0], flush=True)
if connect:
    r = subprocess.run(["dbus-send", "--system", "--print-reply", "--reply-timeout=20000",
                        "--dest=org.bluez", connect, "org.bluez.Device1.Connect"], capture_output=True)
    print("connect rc=%d" % r.returncode, flush=True)
if hold_s < 0:
    while True:
        time.sleep(3600)
time.sleep(hold_s)
os.close(got[1])
print("released", flush=True)
`;

/** A running Python holder. */
export interface PythonHolder {
  readonly child: ChildProcessWithoutNullStreams;
  /** Resolves with the path once the lock is held. */
  readonly held: Promise<string>;
  /** Resolves when the process has exited (code or signal). */
  readonly exited: Promise<number | string>;
  out(): string;
}

/**
 * Starts `/usr/bin/python3` taking the first free of `paths`; `holdS` < 0 holds until killed.
 * `connectPath`: a Device1 object path to Connect (dbus-send) while holding.
 */
export function startPythonHolder(
  paths: readonly string[],
  holdS: number,
  env: NodeJS.ProcessEnv = {},
  connectPath: string | null = null,
): PythonHolder {
  const child = spawn(
    '/usr/bin/python3',
    ['-c', SCRIPT, JSON.stringify(paths), String(holdS), JSON.stringify(connectPath)],
    { stdio: 'pipe', env: { ...process.env, ...env } },
  );
  let out = '';
  let onHeld: (p: string) => void = () => {};
  const held = new Promise<string>((resolve) => (onHeld = resolve));
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    const m = /^held (.+)$/m.exec(out);
    if (m?.[1] !== undefined) onHeld(m[1]);
  });
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  return { child, held, exited, out: () => out };
}

/**
 * Runs `bluez-cm` as a real child process. src/ is transpiled into a temp package named
 * `bluez-connection-manager` (exports `.` and `./testing`), so the CLI under test is the current
 * source, not a possibly stale dist/, and examples importing the package by name resolve to it.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { transpileSrc, type TranspiledSrc } from '../testing/helpers/transpile-src.js';

/** A running or finished child. */
export interface CliRun {
  readonly child: ChildProcessWithoutNullStreams;
  out(): string;
  err(): string;
  /** Exit code, or the signal name when killed by one. */
  readonly exit: Promise<number | string>;
}

/** The transpiled package and a way to run its CLI and scripts. */
export interface CliPackage {
  /** Root of the temp package (holds package.json, src/, node_modules). */
  readonly root: string;
  /** `node <root>/src/cli/main.js ...args`. */
  cli(args: readonly string[], env?: NodeJS.ProcessEnv): CliRun;
  /** `node <file> ...args` with the given cwd (for examples placed in the package). */
  node(file: string, args: readonly string[], env?: NodeJS.ProcessEnv): CliRun;
  /** Kills what is still running and removes the temp package. */
  cleanup(): void;
}

export function buildCliPackage(): CliPackage {
  const src: TranspiledSrc = transpileSrc();
  const root = dirname(src.dir);
  writeFileSync(
    join(root, 'package.json'),
    JSON.stringify({
      name: 'bluez-connection-manager',
      type: 'module',
      exports: {
        '.': './src/index.js',
        './machines': './src/machines/index.js',
        './testing': './src/testing/index.js',
      },
    }),
  );
  const runs: CliRun[] = [];
  const start = (file: string, args: readonly string[], env?: NodeJS.ProcessEnv): CliRun => {
    const child = spawn(process.execPath, [file, ...args], {
      stdio: 'pipe',
      cwd: root,
      env: { ...process.env, ...env },
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exit = new Promise<number | string>((resolve) =>
      child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
    );
    const run: CliRun = { child, out: () => out, err: () => err, exit };
    runs.push(run);
    return run;
  };
  return {
    root,
    cli: (args, env) => start(join(src.dir, 'cli', 'main.js'), args, env),
    node: (file, args, env) => start(file, args, env),
    cleanup() {
      for (const r of runs)
        if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
      src.remove();
    },
  };
}

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls until `check` holds; a generous deadline, not a timing assertion. */
export async function eventually(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** dbus-daemon processes whose command line mentions `needle` (e.g. a socket directory). */
export function dbusDaemonsMentioning(needle: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmd[0]?.endsWith('dbus-daemon') && cmd.some((a) => a.includes(needle))) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}

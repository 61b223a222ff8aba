#!/usr/bin/env node
/**
 * The `bluez-cm` command. This file only dispatches: every subcommand lives in
 * its own module, loaded on demand, and exports `run(args): Promise<number>`
 * (the exit code). To add a command, add one line to `commands`.
 */
interface CommandModule {
  run(args: string[]): Promise<number>;
}

interface Command {
  summary: string;
  load(): Promise<CommandModule>;
}

const commands: Record<string, Command> = {
  demo: {
    summary: '(default) a simulated gateway, 2 adapters and 12 troublesome devices, run by the adapter pool',
    load: () => import('./demo.js'),
  },
  connect: {
    summary: 'one managed connection on the system bus with live state output; Ctrl-C disconnects',
    load: () => import('./connect.js'),
  },
  doctor: {
    summary: 'check BlueZ on the system bus: bluetoothd, adapters, connected devices, phantoms, locks',
    load: () => import('./doctor.js'),
  },
  locks: {
    summary: 'the slot and scan lock files services share, and which process holds each',
    load: () => import('./locks.js'),
  },
  diagram: {
    summary: 'draw the connection or pool machine from its definition (--format mermaid|dot)',
    load: () => import('./diagram.js'),
  },
  sim: {
    summary: 'serve the BlueZ simulator on a private bus for other processes (--scenario FILE.json)',
    load: () => import('./sim.js'),
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((c) => c.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return [
    'usage: bluez-cm <command> [options]',
    '',
    'commands:',
    ...lines,
    '',
    'bluez-cm <command> --help for options; bluez-cm --version for the version.',
  ].join('\n');
}

/** The version in the package's own package.json (dist/cli/main.js and src/cli/main.ts are two levels down). */
async function packageVersion(): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version?: unknown;
  };
  return typeof pkg.version === 'string' ? pkg.version : 'unknown';
}

async function main(argv: string[]): Promise<number> {
  // No command, or only options (`bluez-cm --json`): the demo, the default job.
  const first = argv[0];
  if (first === '--version' || first === '-V' || first === 'version') {
    process.stdout.write(`bluez-cm ${await packageVersion()}\n`);
    return 0;
  }
  const implicitDemo = first === undefined || (first.startsWith('-') && !['--help', '-h'].includes(first));
  const [name = 'demo', ...rest] = implicitDemo ? ['demo', ...argv] : argv;
  if (name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(
      `bluez-cm: unknown command "${name}" (commands: ${Object.keys(commands).join(', ')}; bluez-cm --help)\n`,
    );
    return 2;
  }
  const mod = await command.load();
  return mod.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`bluez-cm: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exitCode = 1;
  },
);

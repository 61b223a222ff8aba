/**
 * `bluez-cm diagram [connection|pool|all] [--format mermaid|dot] [--actions]`: draws the library's
 * machines from their definitions (the machines are the documentation, docs/architecture.md).
 */
import { adapterPoolMachine, connectionMachine, watchdogMachine } from '../machines/index.js';
import { UsageError, parseFlags, stringFlag, usageFailure } from './args.js';
import { machineGraph } from './diagram/graph.js';
import { toDot, toMermaid } from './diagram/render.js';

const HELP = `usage: bluez-cm diagram [connection|pool|watchdog|all] [--format mermaid|dot] [--actions]

Prints a machine of the library as a diagram on stdout, read from the machine
definition itself: every state, every transition with its event, guard and
delay, the actors each state invokes and its entry actions.

  connection   the per-device connection actor; the default
  pool         the adapter pool that spawns them
  watchdog     the notification watchdog that \`connected\` invokes
  all          all three, one after the other

  -f, --format F  mermaid (default; GitHub renders it) or dot (Graphviz:
                  bluez-cm diagram -f dot | dot -Tsvg > connection.svg)
      --actions   also write the actions on every transition
  -h, --help      this text
`;

const MACHINES = {
  connection: connectionMachine,
  pool: adapterPoolMachine,
  watchdog: watchdogMachine,
} as const;

export async function run(args: string[]): Promise<number> {
  try {
    const { values, positionals } = parseFlags(
      args,
      {
        format: { type: 'string', short: 'f' },
        actions: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      true,
    );
    if (values.help === true) {
      process.stdout.write(HELP);
      return 0;
    }
    const format = stringFlag(values, 'format') ?? 'mermaid';
    if (format !== 'mermaid' && format !== 'dot') {
      throw new UsageError(`--format must be "mermaid" or "dot" (got "${format}")`);
    }
    if (positionals.length > 1) throw new UsageError(`one machine at most (got ${positionals.join(' ')})`);
    const which = positionals[0] ?? 'connection';
    if (which !== 'connection' && which !== 'pool' && which !== 'watchdog' && which !== 'all') {
      throw new UsageError(`unknown machine "${which}": connection, pool, watchdog or all`);
    }
    const names: ReadonlyArray<keyof typeof MACHINES> =
      which === 'all' ? ['connection', 'pool', 'watchdog'] : [which];
    const options = { actions: values.actions === true };
    const out = names.map((name) => {
      const graph = machineGraph(MACHINES[name]);
      return format === 'dot' ? toDot(graph, options) : toMermaid(graph, options);
    });
    process.stdout.write(out.join('\n'));
    return 0;
  } catch (e) {
    return usageFailure('diagram', e, HELP);
  }
}

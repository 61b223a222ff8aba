/**
 * `bluez-cm diagram [connection|pool|adapter|watchdog|all] [--format mermaid|dot] [--actions]`:
 * draws the library's machines from their definitions (the machines are the documentation,
 * docs/architecture.md).
 */
import { adapterMachine, adapterPoolMachine, connectionMachine, watchdogMachine } from '../machines/index.js';
import { UsageError, parseFlags, stringFlag, usageFailure } from './args.js';
import { machineGraph } from './diagram/graph.js';
import { toDot, toMermaid } from './diagram/render.js';

const HELP = `usage: bluez-cm diagram [connection|pool|adapter|watchdog|all] [--format mermaid|dot] [--actions]

Prints a machine of the library as a diagram on stdout, read from the machine
definition itself: every state, every transition with its event, guard and
delay, the actors each state invokes and its entry actions. An edge that every
child of a state has alike (e.g. CANCEL in every step) is drawn once, from the
parent; events a state handles without leaving it are listed in its box.

  connection   the per-device connection actor; the default
  pool         the adapter pool that spawns them and the adapter actors
  adapter      one adapter in the pool: free/full slots, the learned limit
  watchdog     the notification watchdog that \`connected\` invokes
  all          all four: Markdown with one mermaid block each, or (dot)
               one digraph each (dot -Tsvg -O renders every one)

  -f, --format F  mermaid (default; GitHub renders it) or dot (Graphviz:
                  bluez-cm diagram -f dot | dot -Tsvg > connection.svg)
      --actions   also write the actions on every transition
  -h, --help      this text
`;

const MACHINES = {
  connection: connectionMachine,
  pool: adapterPoolMachine,
  adapter: adapterMachine,
  watchdog: watchdogMachine,
} as const;

type MachineName = keyof typeof MACHINES;
const isMachineName = (name: string): name is MachineName => name in MACHINES;

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
    if (which !== 'all' && !isMachineName(which)) {
      throw new UsageError(`unknown machine "${which}": connection, pool, adapter, watchdog or all`);
    }
    const names: readonly MachineName[] =
      which === 'all' ? ['connection', 'pool', 'adapter', 'watchdog'] : [which];
    const options = { actions: values.actions === true };
    const out = names.map((name) => {
      const graph = machineGraph(MACHINES[name]);
      if (format === 'dot') return toDot(graph, options);
      const mermaid = toMermaid(graph, options);
      // Several mermaid diagrams are one Markdown document, a fenced block each.
      return which === 'all' ? `## ${name}\n\n\`\`\`mermaid\n${mermaid}\`\`\`\n` : mermaid;
    });
    process.stdout.write(out.join('\n'));
    return 0;
  } catch (e) {
    return usageFailure('diagram', e, HELP);
  }
}

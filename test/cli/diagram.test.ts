/**
 * `bluez-cm diagram` as a child process: the drawing must contain every state of the machines as
 * they are defined now (the expected names come from the machines, not from a list in this test),
 * and the guards, delays and actors that carry the BlueZ workarounds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setup, type AnyStateMachine } from 'xstate';
import {
  adapterMachine,
  adapterPoolMachine,
  connectionMachine,
  watchdogMachine,
} from '../../src/machines/index.js';
import { machineGraph } from '../../src/cli/diagram/graph.js';
import { toDot, toMermaid } from '../../src/cli/diagram/render.js';
import { buildCliPackage, type CliPackage } from './harness.js';

interface Node {
  key: string;
  states: Record<string, Node>;
}

function stateNames(machine: AnyStateMachine): string[] {
  const out: string[] = [];
  const visit = (n: Node): void => {
    for (const child of Object.values(n.states)) {
      out.push(child.key);
      visit(child);
    }
  };
  visit(machine.root as unknown as Node);
  return out;
}

/** Node ids an edge uses that no node statement declares (a dangling edge draws a stray box). */
function undeclaredDotNodes(dot: string): string[] {
  const declared = new Set([...dot.matchAll(/^\s*("(?:[^"\\]|\\.)*") \[/gm)].map((m) => m[1]));
  const used = [...dot.matchAll(/^\s*("(?:[^"\\]|\\.)*") -> ("(?:[^"\\]|\\.)*")/gm)].flatMap((m) => [
    m[1],
    m[2],
  ]);
  return [...new Set(used)].filter((id) => id !== undefined && !declared.has(id)) as string[];
}

describe('bluez-cm diagram', () => {
  let pkg: CliPackage;
  beforeAll(() => {
    pkg = buildCliPackage();
  });
  afterAll(() => pkg.cleanup());

  async function diagram(...args: string[]): Promise<string> {
    const run = pkg.cli(['diagram', ...args]);
    const code = await run.exit;
    expect(run.err()).toBe('');
    expect(code).toBe(0);
    return run.out();
  }

  it('mermaid: every state of the connection and pool machines, with guards, delays and invoked actors', async () => {
    const connection = await diagram('connection', '--format', 'mermaid');
    expect(connection).toMatch(/^---\ntitle: connection machine\n---\nstateDiagram-v2\n/);
    for (const name of stateNames(connectionMachine)) expect(connection).toContain(name);
    expect(stateNames(connectionMachine)).toEqual(
      expect.arrayContaining(['idle', 'locking', 'clearing-stale', 'phantom', 'connecting', 'validating']),
    );
    expect(connection).toContain(
      'establishing_clearing_stale_inspecting --> establishing_phantom : done(inspectDevice) [isPhantom]',
    );
    expect(connection).toContain('establishing_connecting --> disconnecting : after attemptDeadline');
    expect(connection).toContain(
      'establishing_backoff_waiting --> establishing_locking : after backoffForErrorClass',
    );
    expect(connection).toContain(
      'establishing_phantom_deciding --> establishing_escalating : always [!mayCloseInactiveConnections]',
    );
    expect(connection).toContain('establishing_connecting_requesting : invoke connectWithDeadline');
    expect(connection).toContain(
      'establishing_connecting --> establishing_escalating : after attemptDeadline [stillSearching]',
    );
    // Cancellation, queueing and the overall deadline are drawn once, on the frame of a run.
    expect(connection).toContain('establishing --> failed : CANCEL');
    expect(connection).toContain('establishing --> waiting_for_slot : QUEUED_FOR_SLOT');
    expect(connection).toContain('establishing --> failed : after overallDeadline [hasOverallDeadline]');
    expect(connection.match(/^\s*establishing_\S+ --> \S+ : (CANCEL|QUEUED_FOR_SLOT)/gm)).toBeNull();
    expect(connection).toContain('failed --> [*]');
    // The notification watchdog runs inside `connected`; its own drawing shows its states.
    expect(connection).toContain('connected : invoke watchLink, notificationWatchdog');
    expect(connection).toContain('connected --> disconnecting : ZOMBIE');
    const watchdog = await diagram('watchdog');
    for (const name of stateNames(watchdogMachine)) expect(watchdog).toContain(name);
    expect(watchdog).toContain('after silenceLeft [silenceReached]');

    const pool = await diagram('pool');
    for (const name of stateNames(adapterPoolMachine)) expect(pool).toContain(name);
    expect(pool).toContain('title: adapterPool machine');
    // org.bluez as states of their own; the device steps listed in their region's box, not as loops.
    expect(pool).toContain('bluez_up --> bluez_down : BLUEZ_DOWN');
    expect(pool).toContain('bluez_down --> bluez_up : BLUEZ_UP');
    expect(pool).toContain('managing : on ROTATION_REQUESTED / rotateOrQueue');
    expect(pool).not.toMatch(/managing --> managing/);
    expect(pool).toContain('spawns connection, adapter actors');
    // Its two regions side by side (Mermaid's concurrency divider inside the machine's own box).
    expect(pool).toContain('state "adapterPool" as adapterPool_machine {');
    expect(pool).toMatch(/\n {4}--\n/);

    const adapter = await diagram('adapter');
    expect(stateNames(adapterMachine).length).toBeGreaterThan(5);
    for (const name of stateNames(adapterMachine)) expect(adapter).toContain(name);
    expect(adapter).toContain('availability_on_free --> availability_on_full : always [isFull]');
    expect(adapter).toContain('limit_suspected --> limit_learned : always [hasLearnedLimit]');
    expect(adapter).toContain('limit_learned : on after limitReprobe / askForReprobe');
  });

  it('all, mermaid: one Markdown document with a fenced block per machine, each a whole diagram', async () => {
    const all = await diagram('all');
    const blocks = [...all.matchAll(/```mermaid\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
    expect(all.match(/^## \w+$/gm)).toEqual(['## connection', '## pool', '## adapter', '## watchdog']);
    expect(blocks).toHaveLength(4);
    for (const block of blocks) {
      expect(block).toMatch(/^---\ntitle: \w+ machine\n---\nstateDiagram-v2\n/);
      // Every composite state opened is closed.
      expect((block.match(/\{$/gm) ?? []).length).toBe((block.match(/^\s*\}$/gm) ?? []).length);
    }
  });

  it('an edge every child of a state has alike is drawn once, from the parent; a different one stays', () => {
    const machine = setup({}).createMachine({
      id: 'steps',
      initial: 'working',
      states: {
        working: {
          initial: 'one',
          states: {
            one: { on: { NEXT: 'two', CANCEL: '#steps.failed' } },
            two: { on: { NEXT: 'three', CANCEL: '#steps.failed' } },
            three: { on: { CANCEL: '#steps.failed', STOP: '#steps.failed' } },
          },
        },
        failed: { type: 'final' },
      },
    });
    const mermaid = toMermaid(machineGraph(machine), { actions: false });
    expect(mermaid).toContain('working --> failed : CANCEL');
    expect(mermaid).not.toContain('working_one --> failed : CANCEL');
    expect(mermaid).toContain('working_three --> failed : STOP');
    expect(mermaid).toContain('working_one --> working_two : NEXT');
    const dot = toDot(machineGraph(machine), { actions: false });
    expect(dot).toContain('"working.one" -> "failed" [label="CANCEL", ltail="cluster_working"]');
    expect(dot.match(/label="CANCEL"/g)).toHaveLength(1);
  });

  it('dot: every state of every machine, no edge to an undeclared node, guards and delays on the edges', async () => {
    const all = await diagram('all', '-f', 'dot');
    const [connection = '', pool = '', adapter = '', watchdog = ''] = all.split(/\n(?=digraph )/);
    expect(connection).toMatch(/^digraph "connection" \{/);
    expect(pool).toMatch(/^digraph "adapterPool" \{/);
    expect(adapter).toMatch(/^digraph "adapter" \{/);
    expect(watchdog).toMatch(/^digraph "watchdog" \{/);
    for (const name of stateNames(connectionMachine)) expect(connection).toContain(`label="${name}`);
    for (const name of stateNames(adapterPoolMachine)) expect(pool).toContain(`label="${name}`);
    for (const name of stateNames(adapterMachine)) expect(adapter).toContain(`label="${name}`);
    for (const graph of [connection, pool, adapter, watchdog]) {
      expect(undeclaredDotNodes(graph)).toEqual([]);
      expect((graph.match(/\{/g) ?? []).length).toBe((graph.match(/\}/g) ?? []).length);
    }
    // A parallel machine's regions have no initial arrow of their own parent, each its own start.
    expect(pool).toContain('"bluez.[*]" -> "bluez.waiting";');
    expect(adapter).toContain('"availability.[*]" -> "availability.settling";');
    expect(connection).toContain(
      '"establishing.connecting.searching" -> "disconnecting" [label="after attemptDeadline", ltail="cluster_establishing.connecting"]',
    );
    expect(connection).toContain('label="done(inspectDevice) [isPhantom]"');
    expect(connection).toContain('"failed" [label="failed\\nentry');
    expect(connection).toContain('peripheries=2');
    expect((connection.match(/\{/g) ?? []).length).toBe((connection.match(/\}/g) ?? []).length);
  });

  it('--actions writes the actions on the transitions', async () => {
    const out = await diagram('connection', '--actions');
    expect(out).toContain(
      'establishing_connecting_requesting --> establishing_escalating : error(connectWithDeadline) / recordAttemptFailure',
    );
  });

  it('bad arguments exit 2 naming the flag or the argument', async () => {
    const cases: Array<[string[], string]> = [
      [['diagram', '--format', 'svg'], '--format must be "mermaid" or "dot" (got "svg")'],
      [['diagram', 'locks'], 'unknown machine "locks": connection, pool, adapter, watchdog or all'],
      [['diagram', '--colour'], "'--colour'"],
    ];
    for (const [args, message] of cases) {
      const run = pkg.cli(args);
      expect(await run.exit, args.join(' ')).toBe(2);
      expect(run.err()).toContain(message);
      expect(run.out()).toBe('');
    }
  });
});

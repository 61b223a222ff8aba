/**
 * Model-based testing helpers for any machine of the library (the pool and the adapter actor; the
 * connection machine has its own in connection-model.ts): transition keys for coverage checks
 * (@xstate/graph only guarantees state coverage), every state id, and a recorder of the
 * transitions a running actor takes, from XState's inspection stream.
 */
import { getAdjacencyMap, getShortestPaths, joinPaths, serializeEvent, type StatePath } from '@xstate/graph';
import type {
  AnyEventObject,
  AnyStateMachine,
  AnyStateNode,
  AnyTransitionDefinition,
  InspectionEvent,
  Snapshot,
} from 'xstate';

type AnySnapshotLike = Snapshot<unknown>;

/** A stable key for a transition definition: source state id, event, position among its siblings. */
export function transitionKey(t: AnyTransitionDefinition): string {
  const source = t.source as AnyStateNode;
  const siblings: readonly AnyTransitionDefinition[] =
    t.eventType === '' ? (source.always ?? []) : (source.transitions.get(t.eventType) ?? []);
  return `${source.id} | ${t.eventType === '' ? '(always)' : t.eventType} | #${siblings.indexOf(t)}${
    t.target?.length ? ` → ${t.target.map((n) => n.id).join(',')}` : ''
  }`;
}

/** Every transition definition of `machine`, by key. */
export function allTransitionKeys(machine: AnyStateMachine): string[] {
  const keys: string[] = [];
  const visit = (node: AnyStateNode): void => {
    for (const list of node.transitions.values()) for (const t of list) keys.push(transitionKey(t));
    for (const t of node.always ?? []) keys.push(transitionKey(t));
    for (const child of Object.values(node.states)) visit(child);
  };
  visit(machine.root);
  return [...new Set(keys)].sort();
}

/** Every state id of `machine` (the root excluded). */
export function allStateIds(machine: AnyStateMachine): string[] {
  const ids: string[] = [];
  const visit = (node: AnyStateNode): void => {
    for (const child of Object.values(node.states)) {
      ids.push(child.id);
      visit(child);
    }
  };
  visit(machine.root);
  return ids.sort();
}

/** Records, per machine id, the transitions taken and the states entered by every actor inspected. */
export function transitionRecorder(machineIds: readonly string[]) {
  const transitions = new Map<string, Set<string>>(machineIds.map((id) => [id, new Set()]));
  const states = new Map<string, Set<string>>(machineIds.map((id) => [id, new Set()]));
  const inspect = (event: InspectionEvent): void => {
    if (event.type !== '@xstate.microstep' && event.type !== '@xstate.snapshot') return;
    const snapshot = event.snapshot as {
      machine?: { id?: string };
      _nodes?: ReadonlyArray<{ id: string }>;
    };
    const id = snapshot.machine?.id;
    if (id === undefined || !transitions.has(id)) return;
    for (const node of snapshot._nodes ?? []) if (node.id !== id) states.get(id)?.add(node.id);
    if (event.type === '@xstate.microstep') {
      for (const t of event._transitions) transitions.get(id)?.add(transitionKey(t));
    }
  };
  return {
    inspect,
    transitions: (id: string): Set<string> => transitions.get(id) ?? new Set(),
    states: (id: string): Set<string> => states.get(id) ?? new Set(),
  };
}

/**
 * Shortest paths to every state, then one more path per adjacency edge not on them: the shortest
 * path to its source plus that edge, so every (state, event) pair of the model is exercised, the
 * ones that stay in the same state (targetless transitions, `after` actions) included.
 */
export function pathsOverEveryEdge<TSnapshot extends AnySnapshotLike, TInput>(
  machine: AnyStateMachine,
  options: {
    input: TInput;
    events: (snapshot: TSnapshot) => AnyEventObject[];
    serializeState: (snapshot: TSnapshot) => string;
  },
): Array<StatePath<TSnapshot, AnyEventObject>> {
  type Path = StatePath<TSnapshot, AnyEventObject>;
  const traversal = options as unknown as NonNullable<Parameters<typeof getShortestPaths>[1]>;
  const shortest = getShortestPaths(machine, traversal) as unknown as Path[];
  const bySource = new Map<string, Path>();
  for (const path of shortest) bySource.set(options.serializeState(path.state), path);
  const taken = new Set<string>();
  const edge = (from: TSnapshot, event: AnyEventObject): string =>
    `${options.serializeState(from)} ${serializeEvent(event)}`;
  for (const path of shortest) {
    path.steps.forEach((step, i) => {
      const prev = path.steps[i - 1];
      if (prev !== undefined) taken.add(edge(prev.state, step.event));
    });
  }
  const out = [...shortest];
  const adjacency = getAdjacencyMap(machine, traversal) as unknown as Record<
    string,
    { transitions: Record<string, { event: AnyEventObject; state: TSnapshot }> }
  >;
  for (const [source, value] of Object.entries(adjacency)) {
    const head = bySource.get(source);
    if (head === undefined) continue;
    for (const { event, state } of Object.values(value.transitions)) {
      if (taken.has(edge(head.state, event))) continue;
      taken.add(edge(head.state, event));
      out.push(
        joinPaths(head, {
          state,
          steps: [
            { state: head.state, event: { type: 'xstate.init' } },
            { state, event },
          ],
          weight: 1,
        }),
      );
    }
  }
  return out;
}

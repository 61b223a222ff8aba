/**
 * A plain graph of an XState v5 machine, read from the machine definition itself (its StateNode
 * tree: states, `on`/`always`/`after` transitions, invocations, entry actions), so the diagram is
 * always the machine that runs, never a drawing that drifted from it. The renderers (mermaid.ts,
 * dot.ts) only format this graph.
 */
import type { AnyStateMachine } from 'xstate';

/** One transition. `to` is empty for a targetless transition (actions only, no state change). */
export interface GraphEdge {
  readonly from: string;
  readonly to: readonly string[];
  /** What triggers it, in words: an event type, `always`, `after <delay>`, `done(<actor>)`, `error(<actor>)`. */
  readonly trigger: string;
  readonly guard: string | null;
  readonly actions: readonly string[];
}

/** One state. `id` is unique in the machine (its path), `name` its key. */
export interface GraphState {
  readonly id: string;
  readonly name: string;
  readonly type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  /** Id of the initial child (compound states). */
  readonly initial: string | null;
  readonly children: readonly GraphState[];
  /** Sources of the actors the state invokes. */
  readonly invokes: readonly string[];
  readonly entry: readonly string[];
  readonly edges: readonly GraphEdge[];
}

/** The machine as a graph. */
export interface MachineGraph {
  readonly id: string;
  readonly root: GraphState;
  /** Actors the machine knows but no state invokes (spawned by actions, e.g. the pool's children). */
  readonly spawned: readonly string[];
}

/** The part of XState's StateNode this module reads (typed narrowly: the public type is generic-heavy). */
interface NodeLike {
  key: string;
  path: string[];
  type: GraphState['type'];
  states: Record<string, NodeLike>;
  initial?: { target?: NodeLike[] };
  invoke: Array<{ src: unknown; id: string }>;
  entry: unknown[];
  transitions: Map<string, TransitionLike[]>;
  always?: TransitionLike[];
  after: TransitionLike[];
}
interface TransitionLike {
  eventType: string;
  target?: NodeLike[];
  guard?: unknown;
  actions: unknown[];
  delay?: unknown;
}

/** A guard's name: `isPhantom`, `!mayCloseInactiveConnections`, `escalationSaysRotate and hasParentPool`. */
export function guardName(guard: unknown): string | null {
  if (guard === undefined || guard === null) return null;
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'object' && 'type' in guard && typeof guard.type === 'string') return guard.type;
  if (typeof guard === 'function') {
    const inner = (guard as { guards?: unknown[] }).guards;
    if (Array.isArray(inner)) {
      const parts = inner.map((g) => guardName(g) ?? '?');
      if (guard.name === 'not') return `!${parts.length === 1 ? parts[0] : `(${parts.join(' and ')})`}`;
      if (guard.name === 'and') return parts.join(' and ');
      if (guard.name === 'or') return parts.join(' or ');
    }
    return guard.name !== '' ? guard.name : 'inline guard';
  }
  return 'guard';
}

/** Action names, without XState's internal raise/cancel for delayed transitions. */
export function actionNames(actions: readonly unknown[]): string[] {
  const out: string[] = [];
  for (const a of actions) {
    if (typeof a === 'string') out.push(a);
    else if (typeof a === 'function' || (typeof a === 'object' && a !== null)) {
      const type = (a as { type?: unknown }).type;
      if (typeof type === 'string') {
        if (type.startsWith('xstate.')) continue;
        out.push(type);
      } else if (typeof a === 'function' && a.name !== '') out.push(a.name);
      else out.push('inline action');
    }
  }
  return out;
}

function delayName(delay: unknown): string {
  if (typeof delay === 'number') return `${delay} ms`;
  if (typeof delay === 'string') return delay;
  return 'delay';
}

function triggerOf(t: TransitionLike): string {
  const type = t.eventType;
  if (t.delay !== undefined) return `after ${delayName(t.delay)}`;
  if (type === '') return 'always';
  if (type === 'xstate.done.actor.*') return 'any child done';
  if (type === 'xstate.error.actor.*') return 'any child error';
  const done = /^xstate\.done\.actor\.(.+)$/.exec(type);
  if (done) return `done(${done[1]})`;
  const error = /^xstate\.error\.actor\.(.+)$/.exec(type);
  if (error) return `error(${error[1]})`;
  if (type === '*') return 'any event';
  return type;
}

const idOf = (node: NodeLike): string => (node.path.length === 0 ? '(machine)' : node.path.join('.'));

function srcName(src: unknown): string {
  if (typeof src === 'string') return src;
  const id = (src as { id?: unknown } | null)?.id;
  return typeof id === 'string' ? id : 'inline actor';
}

function walk(node: NodeLike, invoked: Set<string>): GraphState {
  const edges: GraphEdge[] = [];
  const seen = new Set<TransitionLike>();
  const add = (t: TransitionLike, trigger?: string): void => {
    if (seen.has(t)) return;
    seen.add(t);
    edges.push({
      from: idOf(node),
      to: (t.target ?? []).map(idOf),
      trigger: trigger ?? triggerOf(t),
      guard: guardName(t.guard),
      actions: actionNames(t.actions),
    });
  };
  // `after` transitions also appear in `transitions` under their internal event; list them first
  // so they are named by their delay.
  for (const t of node.after) add(t);
  for (const list of node.transitions.values()) for (const t of list) add(t);
  for (const t of node.always ?? []) add(t, 'always');
  const invokes = node.invoke.map((i) => srcName(i.src));
  for (const s of invokes) invoked.add(s);
  const children = Object.values(node.states).map((child) => walk(child, invoked));
  const initial = node.initial?.target?.[0];
  return {
    id: idOf(node),
    name: node.key,
    type: node.type,
    initial: initial === undefined ? null : idOf(initial),
    children,
    invokes,
    entry: actionNames(node.entry),
    edges,
  };
}

const sameEdge = (a: GraphEdge, b: GraphEdge): boolean =>
  a.trigger === b.trigger &&
  a.guard === b.guard &&
  a.to.join('\n') === b.to.join('\n') &&
  a.actions.join('\n') === b.actions.join('\n');

/**
 * Repeated edges collapse onto their parent: an edge (same trigger, guard, target and actions) that
 * every child of a compound state has (final children aside, they take no events) is drawn once,
 * from the parent, e.g. a CANCEL handled the same way in every step of an attempt. Bottom-up, so a
 * collapsed edge can collapse again one level higher. Targetless edges stay where they are.
 */
export function collapseRepeatedEdges(state: GraphState): GraphState {
  const children = state.children.map(collapseRepeatedEdges);
  const takers = children.filter((c) => c.type !== 'final');
  if (state.type !== 'compound' || takers.length < 2) return { ...state, children };
  const [first, ...rest] = takers;
  const shared = (first?.edges ?? []).filter(
    (e) => e.to.length > 0 && rest.every((c) => c.edges.some((o) => sameEdge(o, e))),
  );
  if (shared.length === 0) return { ...state, children };
  return {
    ...state,
    children: children.map((c) =>
      c.type === 'final' ? c : { ...c, edges: c.edges.filter((e) => !shared.some((x) => sameEdge(x, e))) },
    ),
    edges: [...state.edges, ...shared.map((e) => ({ ...e, from: state.id }))],
  };
}

/** Reads `machine` into a {@link MachineGraph} (repeated edges collapsed onto their parent). */
export function machineGraph(machine: AnyStateMachine): MachineGraph {
  const invoked = new Set<string>();
  const root = collapseRepeatedEdges(walk(machine.root as unknown as NodeLike, invoked));
  const known = Object.keys((machine.implementations as { actors?: Record<string, unknown> }).actors ?? {});
  return { id: machine.id, root, spawned: known.filter((a) => !invoked.has(a)) };
}

/** Every state of the graph, depth first (the root excluded). */
export function allStates(graph: MachineGraph): GraphState[] {
  const out: GraphState[] = [];
  const visit = (s: GraphState): void => {
    for (const c of s.children) {
      out.push(c);
      visit(c);
    }
  };
  visit(graph.root);
  return out;
}

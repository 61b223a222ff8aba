/**
 * Records the states a connection actor passes through, transient ones included (`escalating` is
 * left in the same macrostep it is entered, so snapshot subscribers never see it; the inspection
 * stream's microsteps do). Used by tests to assert state sequences and by the CLI for live output.
 */
import type { AnyTransitionDefinition, InspectionEvent, StateValue } from 'xstate';

/** A state trail: pass `inspect` to `createActor`/`createConnectionActor`, then read `states`. */
export interface StateTrail {
  /** Top-level state names in order, consecutive repeats collapsed. */
  readonly states: string[];
  /** States the actor rested in (one per macrostep; transient states such as `escalating` are absent). */
  readonly settled: string[];
  /** Every transition definition the root actor took (for transition-coverage checks). */
  readonly transitions: AnyTransitionDefinition[];
  /** The inspection callback. */
  readonly inspect: (event: InspectionEvent) => void;
}

/**
 * States that only frame others: the name users see is the child's. The connection machine's
 * `establishing` owns cancellation, the overall deadline and queueing for its steps (`locking`,
 * `connecting`, …), which are what a trail, a log line or the CLI shows.
 */
const FRAMES: ReadonlySet<string> = new Set(['establishing']);

/**
 * The name users see for a state value: the top-level state, or the step inside a frame
 * (`{ 'clearing-stale': 'inspecting' }` → `clearing-stale`;
 * `{ establishing: { connecting: 'requesting' } }` → `connecting`).
 */
export function topLevelState(value: StateValue): string {
  if (typeof value === 'string') return value;
  const [key, inner] = Object.entries(value)[0] ?? [];
  if (key === undefined) return '';
  return FRAMES.has(key) && inner !== undefined ? topLevelState(inner) : key;
}

/**
 * A fresh trail of the machine with id `machineId` (default `connection`); its invoked children and
 * any parent (an adapter pool) are ignored. Give one trail to one actor.
 */
export function createStateTrail(machineId = 'connection'): StateTrail {
  const states: string[] = [];
  const settled: string[] = [];
  const transitions: AnyTransitionDefinition[] = [];
  const push = (value: unknown): void => {
    if (value === undefined || value === null) return;
    const name = topLevelState(value as StateValue);
    if (states[states.length - 1] !== name) states.push(name);
  };
  const inspect = (event: InspectionEvent): void => {
    if (!('snapshot' in event)) return;
    if ((event.snapshot as { machine?: { id?: string } }).machine?.id !== machineId) return;
    if (event.type === '@xstate.microstep') {
      transitions.push(...event._transitions);
      push((event.snapshot as { value?: unknown }).value);
    } else if (event.type === '@xstate.snapshot') {
      const value = (event.snapshot as { value?: unknown }).value;
      if (states.length === 0) push(value);
      if (value !== undefined && value !== null) {
        const name = topLevelState(value as StateValue);
        if (settled[settled.length - 1] !== name) settled.push(name);
      }
    }
  };
  return { states, settled, transitions, inspect };
}

/**
 * The pool takes `@statelyai/inspect`'s `inspector.inspect` unchanged (this file compiles only if
 * the option type accepts it), `pool.connect()` returns a typed connection actor, and every actor
 * the inspector hears of names its parent: the pool is the root, its adapter and connection actors
 * are its children, and what a connection actor invokes is that actor's child.
 */
import { createInspector, type StatelyActorEvent, type StatelyInspectionEvent } from '@statelyai/inspect';
import { afterEach, describe, expect, it } from 'vitest';
import type { PooledConnectionActor } from '../../src/machines/adapter-pool.js';
import { peripheral, startPoolWorld, type PoolWorld } from './sim-harness.js';

const DEV = 'AA:BB:CC:00:02:01';
let world: PoolWorld | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

describe('the pool and the Stately inspector', () => {
  it('inspector.inspect unchanged; every actor (pool, adapters, connections, their invocations) named with its parent', async () => {
    const sent: StatelyInspectionEvent[] = [];
    const inspector = createInspector({ send: (event) => sent.push(event) });
    world = await startPoolWorld(
      { adapters: [{ name: 'hci0' }, { name: 'hci1' }], devices: [peripheral(DEV)] },
      { inspect: inspector.inspect },
    );
    const w = world;
    // Typed: the snapshot's context is the connection machine's, no cast.
    const child: PooledConnectionActor = w.pool.connect(DEV);
    expect(child.getSnapshot().context.address).toBe(DEV);
    const connected = await w.pool.connected(DEV);
    expect(connected.child).toBe(child);
    expect(child.getSnapshot().context.attempts.at(-1)?.outcome).toBe('connected');
    await w.pool.disconnect(DEV);
    inspector.stop();

    const actors = sent.filter((e): e is StatelyActorEvent => e.type === '@xstate.actor');
    const roots = actors.filter((e) => e.parentId === undefined);
    expect(roots.map((e) => e.name)).toEqual(['adapterPool']);
    const pool = roots[0]?.sessionId;
    const sessions = new Set(actors.map((e) => e.sessionId));
    // Every other actor names a parent the inspector knows.
    for (const e of actors.filter((x) => x.parentId !== undefined)) expect(sessions).toContain(e.parentId);
    const childrenOfPool = actors.filter((e) => e.parentId === pool).map((e) => e.name);
    expect(childrenOfPool).toEqual(
      expect.arrayContaining(['adapter:hci0', 'adapter:hci1', `device:${DEV}#1`]),
    );
    const device = actors.find((e) => e.name === `device:${DEV}#1`)?.sessionId;
    const invoked = actors.filter((e) => e.parentId === device).map((e) => e.name);
    expect(invoked).toEqual(expect.arrayContaining(['acquireDeviceLock', 'connectWithDeadline']));
  }, 30_000);
});

/**
 * The `inspect` option takes `@statelyai/inspect`'s `inspector.inspect` (an observer) unchanged,
 * as well as a callback; anything else is refused naming the field.
 */
import { createInspector, type StatelyInspectionEvent } from '@statelyai/inspect';
import { afterEach, describe, expect, it } from 'vitest';
import { createConnectionActor, establishConnection } from '../../src/connection/establish.js';
import { bms, scenarioOptions, startWorld, type World } from './harness.js';

let world: World | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

describe('the inspect option', () => {
  it("takes a Stately inspector's inspect observer unchanged and feeds it the connection actor", async () => {
    world = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    const sent: StatelyInspectionEvent[] = [];
    const inspector = createInspector({ send: (event) => sent.push(event) });
    const connection = await establishConnection({ ...scenarioOptions(world), inspect: inspector.inspect });
    await connection.disconnect();
    inspector.stop();
    const root = sent.find((e) => e.type === '@xstate.actor' && e.parentId === undefined);
    expect(root).toBeDefined();
    // The actors the connection invoked (lock, inspect, connect, validate, …) name it as parent.
    expect(
      sent.filter((e) => e.type === '@xstate.actor' && e.parentId === root?.sessionId).length,
    ).toBeGreaterThan(3);
  });

  it('refuses an object without next(), naming the field, before any I/O', async () => {
    const w = await startWorld({ adapters: [{ name: 'hci0' }], devices: [bms()] });
    world = w;
    const before = w.env.sim.calls.length;
    expect(() =>
      createConnectionActor({ ...scenarioOptions(w), bluez: w.bluez, inspect: {} as never }),
    ).toThrow(/inspect must be a function or an observer/);
    expect(w.env.sim.calls.length).toBe(before);
  });
});

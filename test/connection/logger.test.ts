/**
 * The caller's logger: pino (fields first, message second) and console are taken unchanged, and
 * every line carries its fields.
 */
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { establishConnection } from '../../src/connection/establish.js';
import { DEVICE, bms, scenarioOptions, startWorld, type World } from './harness.js';

let world: World | undefined;
afterEach(async () => {
  await world?.stop();
  world = undefined;
});

/** A pino logger writing JSON lines into an array. */
function pinoIntoArray(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line));
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, sink), lines };
}

describe('a pino logger passed in', () => {
  it('keeps its fields: the escalation after an RF abort on hci1 logs address, adapter and action', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [bms(['hci1'])],
      faults: [{ kind: 'rf-abort', target: { device: DEVICE }, count: 1 }],
    });
    const { logger, lines } = pinoIntoArray();
    const connection = await establishConnection({ ...scenarioOptions(world), adapters: ['hci1'], logger });
    await connection.disconnect();
    const escalation = lines.find((l) => typeof l['msg'] === 'string' && l['msg'].startsWith('escalation'));
    expect(escalation).toMatchObject({
      level: 30,
      address: DEVICE,
      adapter: 'hci1',
      action: expect.any(String),
      failures: 1,
    });
    expect(escalation?.['msg']).toMatch(/^escalation after 1 failure\(s\) on hci1: /);
    // Every state change is a debug line with from/to fields, not only a message.
    const transitions = lines.filter((l) => l['level'] === 20 && 'to' in l).map((l) => l['to']);
    expect(transitions).toContain('connecting');
    expect(transitions).toContain('connected');
    expect(lines.every((l) => l['address'] === DEVICE)).toBe(true);
  });
});

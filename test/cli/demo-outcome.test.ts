/**
 * The demo's verdict, in-process with a variant of its world: a device that cannot do what the
 * demo expects makes it report the device and the reason, and it stops waiting as soon as the
 * outcome is certain (not at its deadline). Real private bus, simulator and pool.
 */
import { describe, expect, it } from 'vitest';
import { demoDeadlineMs, runDemo } from '../../src/cli/demo/run.js';
import { demoWorld, type DemoWorld } from '../../src/cli/demo/world.js';

/** The demo world where the SmartShunt is out of range but still expected to connect. */
function shuntOutOfRange(scale: number): DemoWorld {
  const world = demoWorld(scale);
  const devices = world.devices.map((d) =>
    d.name === 'SmartShunt HQ2145'
      ? { ...d, faults: [], options: { ...d.options, maxAttempts: 2 }, spec: { ...d.spec, inRange: false } }
      : d,
  );
  return {
    ...world,
    devices,
    scenario: {
      ...world.scenario,
      devices: devices.map((d) => d.spec),
      faults: devices.flatMap((d) => d.faults),
    },
  };
}

describe('demo verdict', () => {
  it('a device expected to connect that fails is named with its cause; the demo ends without waiting for its deadline', async () => {
    const written: string[] = [];
    const started = Date.now();
    const result = await runDemo({
      latencyScale: 0.05,
      world: shuntOutOfRange,
      output: { mode: 'json', write: (t) => written.push(t), columns: () => 120 },
    });
    expect(result.summary?.ok).toBe(false);
    expect(result.problem).toMatch(/SmartShunt HQ2145 \(D3:5E:7D:20:00:03\) failed \(last cause: \w+\)/);
    expect(result.summary?.devices.find((d) => d.name === 'SmartShunt HQ2145')?.final).toBe('failed');
    // Everyone else still ended as expected.
    expect(result.summary?.unexpected).toHaveLength(1);
    expect(Date.now() - started).toBeLessThan(demoDeadlineMs(0.05));
    const records = written
      .join('')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string });
    expect(records[records.length - 1]?.type).toBe('stopped');
  }, 60_000);
});

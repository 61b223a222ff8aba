/**
 * Prometheus metrics from the machines' inspection stream: attempts by adapter and class, connects,
 * escalations, link losses, time to connected, slot gauges of a pool, event-loop delay.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { establishConnection } from '../../src/connection/establish.js';
import { createPrometheusMetrics, type PrometheusMetrics } from '../../src/metrics/prometheus.js';
import { DEVICE, bms, eventually, scenarioOptions, startWorld, type World } from '../connection/harness.js';
import { peripheral, startPoolWorld, type PoolWorld } from '../pool/sim-harness.js';
import { parsePrometheusText, sampleValue } from './prom-text.js';

let world: World | undefined;
let poolWorld: PoolWorld | undefined;
let metrics: PrometheusMetrics | undefined;
afterEach(async () => {
  metrics?.close();
  await world?.stop();
  await poolWorld?.stop();
  world = undefined;
  poolWorld = undefined;
  metrics = undefined;
});

describe('Prometheus metrics of a managed connection', () => {
  it('an RF abort on hci1, then a connect, then a link loss: each counted once with its labels', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [bms(['hci1'])],
      faults: [{ kind: 'rf-abort', target: { device: DEVICE }, count: 1 }],
    });
    metrics = await createPrometheusMetrics();
    const connection = await establishConnection({
      ...scenarioOptions(world),
      adapters: ['hci1'],
      inspect: metrics.inspect,
    });
    world.env.sim.inject({ kind: 'link-drop', target: { device: DEVICE, adapter: 'hci1' } });
    const running = connection.actor;
    await eventually('link loss seen by the actor', () => running.getSnapshot().value === 'idle');
    const samples = parsePrometheusText(await metrics.text());
    expect(
      sampleValue(samples, 'bluez_cm_attempts_total', {
        adapter: 'hci1',
        outcome: 'failed',
        class: 'aborted',
      }),
    ).toBe(1);
    expect(sampleValue(samples, 'bluez_cm_attempts_total', { adapter: 'hci1', outcome: 'connected' })).toBe(
      1,
    );
    expect(sampleValue(samples, 'bluez_cm_connects_total', { adapter: 'hci1' })).toBe(1);
    expect(sampleValue(samples, 'bluez_cm_link_losses_total', { adapter: 'hci1' })).toBe(1);
    const escalated = samples.filter(
      (s) => s.name === 'bluez_cm_escalations_total' && s.labels['adapter'] === 'hci1',
    );
    expect(escalated.map((s) => s.value).reduce((a, b) => a + b, 0)).toBe(1);
    expect(sampleValue(samples, 'bluez_cm_time_to_connected_seconds_count', { adapter: 'hci1' })).toBe(1);
    expect(
      sampleValue(samples, 'bluez_cm_time_to_connected_seconds_sum', { adapter: 'hci1' }),
    ).toBeGreaterThan(0);
    expect(
      sampleValue(samples, 'bluez_cm_event_loop_delay_seconds', { quantile: '0.99' }),
    ).toBeGreaterThanOrEqual(0);
    // Scraping twice counts nothing twice.
    const again = parsePrometheusText(await metrics.text());
    expect(sampleValue(again, 'bluez_cm_attempts_total', { adapter: 'hci1', outcome: 'connected' })).toBe(1);
    await connection.disconnect();
  });

  it('a pool: slots in use and the limit in force per adapter', async () => {
    const macs = ['AA:BB:CC:00:00:01', 'AA:BB:CC:00:00:02'];
    metrics = await createPrometheusMetrics();
    poolWorld = await startPoolWorld(
      { adapters: [{ name: 'hci0' }], devices: macs.map((m) => peripheral(m, { knownOn: ['hci0'] })) },
      { slotsPerAdapter: 3, inspect: metrics.inspect },
    );
    metrics.observePool(poolWorld.pool);
    const pool = poolWorld.pool;
    await Promise.all(macs.map((m) => pool.connected(m)));
    const samples = parsePrometheusText(await metrics.text());
    expect(sampleValue(samples, 'bluez_cm_slots_in_use', { adapter: 'hci0' })).toBe(2);
    expect(sampleValue(samples, 'bluez_cm_slot_limit', { adapter: 'hci0' })).toBe(3);
    expect(sampleValue(samples, 'bluez_cm_connects_total', { adapter: 'hci0' })).toBe(2);
    expect(samples.some((s) => s.name === 'bluez_cm_learned_slot_limit')).toBe(false);
  });

  it('an adapter reset chosen by escalation is counted as a reset and as a reset escalation', async () => {
    world = await startWorld({
      adapters: [{ name: 'hci0' }],
      devices: [bms()],
      faults: [
        {
          kind: 'fail-connect',
          target: { device: DEVICE },
          count: 1,
          errorName: 'org.bluez.Error.Failed',
          message: 'Software caused connection abort',
        },
      ],
    });
    metrics = await createPrometheusMetrics();
    const connection = await establishConnection({
      ...scenarioOptions(world),
      escalation: { reset: true, resetAfter: 1, rotateAfter: 5, clearAfter: 5, diagnose: false },
      inspect: metrics.inspect,
    });
    const samples = parsePrometheusText(await metrics.text());
    expect(sampleValue(samples, 'bluez_cm_adapter_resets_total', { adapter: 'hci0' })).toBe(1);
    expect(sampleValue(samples, 'bluez_cm_escalations_total', { adapter: 'hci0', action: 'reset' })).toBe(1);
    await connection.disconnect();
  });

  it('bad options are refused naming the field', async () => {
    await expect(createPrometheusMetrics({ prefix: 'bad prefix' })).rejects.toThrow(/prefix must be/);
  });
});

/**
 * `bluez-cm demo --metrics PORT`: the demo's pool and connection actors feed Prometheus metrics;
 * /metrics is scraped over HTTP after the summary and parsed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parsePrometheusText, sampleValue, type Sample } from '../metrics/prom-text.js';
import { buildCliPackage, eventually, type CliPackage } from './harness.js';

const sum = (samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number =>
  samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((total, s) => total + s.value, 0);

describe('bluez-cm demo --metrics', () => {
  let pkg: CliPackage;
  beforeAll(() => {
    pkg = buildCliPackage();
  });
  afterAll(() => pkg.cleanup());

  it('serves /metrics with the gateway’s attempts, connects, link losses, slots and event-loop delay', async () => {
    const run = pkg.cli(['demo', '--json', '--metrics', '0']);
    await eventually('the metrics URL', () => /"type":"metrics"/.test(run.out()), 30_000);
    const url = String(JSON.parse(run.out().split('\n')[0] ?? '{}').url);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
    await eventually('the summary', () => /"type":"summary"/.test(run.out()), 80_000);
    // The demo prints "still serving" after a good outcome, or its problem and exits 1.
    await eventually(
      'still serving after the summary, or the problem the demo saw',
      () => /still serving/.test(run.err()) || run.child.exitCode !== null,
      20_000,
    );
    expect(run.err(), 'the demo kept serving its metrics after a good outcome').toMatch(/still serving/);

    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/text\/plain/);
    const samples = parsePrometheusText(await response.text());
    // 11 devices end connected (some connect more than once: reconnects after the power cut).
    expect(sum(samples, 'bluez_cm_connects_total')).toBeGreaterThanOrEqual(11);
    expect(sum(samples, 'bluez_cm_attempts_total', { outcome: 'connected' })).toBe(
      sum(samples, 'bluez_cm_connects_total'),
    );
    // The dead garage door: at least its 3 failed attempts, all deadlines (noReply).
    expect(
      sum(samples, 'bluez_cm_attempts_total', { outcome: 'failed', class: 'noReply' }),
    ).toBeGreaterThanOrEqual(3);
    // The brown-out on hci0 drops 7 links.
    expect(sum(samples, 'bluez_cm_link_losses_total', { adapter: 'hci0' })).toBeGreaterThanOrEqual(7);
    expect(sum(samples, 'bluez_cm_escalations_total')).toBeGreaterThan(0);
    expect(sampleValue(samples, 'bluez_cm_slot_limit', { adapter: 'hci0' })).toBe(7);
    const learned = sampleValue(samples, 'bluez_cm_learned_slot_limit', { adapter: 'hci1' });
    expect(learned === undefined || (learned >= 4 && learned <= 6)).toBe(true);
    expect(sum(samples, 'bluez_cm_time_to_connected_seconds_count')).toBe(
      sum(samples, 'bluez_cm_connects_total'),
    );
    expect(
      sampleValue(samples, 'bluez_cm_event_loop_delay_seconds', { quantile: '0.99' }),
    ).toBeGreaterThanOrEqual(0);
    expect((await fetch(url.replace('/metrics', '/other'))).status).toBe(404);

    run.child.kill('SIGINT');
    expect(await run.exit).toBe(0);
    await expect(fetch(url)).rejects.toThrow();
  }, 120_000);

  it('a bad port is a usage error naming the flag', async () => {
    const run = pkg.cli(['demo', '--metrics', '70000']);
    expect(await run.exit).toBe(2);
    expect(run.err()).toMatch(/--metrics must be an integer/);
  });
});

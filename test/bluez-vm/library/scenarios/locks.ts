/**
 * Cross-process connection slots against bluetoothd 5.66: two host processes (separate Node
 * processes running the library, as two services on a gateway would) connect the same peripheral
 * through hci0 with one slot between them. Their slot-holding phases (from the end of `locking` to
 * the slot's release as validation starts) never overlap, and both end connected: the second one either connects
 * after the first or adopts its link after its own inspection.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { transpileSrc } from '../../../testing/helpers/transpile-src.js';
import { kernelLinks } from '../helpers.js';
import type { LibraryScenario } from '../types.js';

const SERVICE = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'lock',
  'children',
  'service.mjs',
);

type Trail = Array<[string, number]>;

/**
 * [end of locking, first lease release after it]: the slot-holding phase. The start is observed
 * after the flock was taken and the end just before it is given back, so two phases that overlap
 * here overlapped in the kernel too. (The snapshot that shows `validating` is not the end: it is
 * taken after the rest of validating's entry work, and under load another process had the slot
 * 2 ms before it.)
 */
function slotPhase(trail: Trail, releases: number[]): [number, number] {
  const afterLock = trail.findIndex(([s], i) => i > 0 && trail[i - 1]?.[0] === 'locking' && s !== 'locking');
  const start = trail[afterLock]?.[1] ?? NaN;
  const end = releases.find((t) => t > start) ?? NaN;
  return [start, end];
}

export const lockScenarios: LibraryScenario[] = [
  {
    name: 'two host processes with one slot on hci0: their connect phases never overlap, both end connected',
    timeoutMs: 240_000,
    async run(ctx) {
      const src = transpileSrc();
      ctx.defer(() => src.remove());
      const lockDir = mkdtempSync(join(tmpdir(), 'bcm-vm-locks-'));
      ctx.defer(() => rmSync(lockDir, { recursive: true, force: true }));
      const config = {
        address: ctx.peripheral,
        adapters: [ctx.central],
        lock: { dir: lockDir, maxSlots: 1, retryIntervalMs: 20, timeoutMs: 120_000 },
        attemptTimeoutMs: 30_000,
      };
      const children = [0, 1].map(() => {
        const child = spawn(process.execPath, [SERVICE, src.dir, JSON.stringify(config)], {
          stdio: 'pipe',
          env: { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: ctx.busAddress },
        });
        let out = '';
        child.stdout.on('data', (d: Buffer) => (out += d.toString()));
        child.stderr.on('data', (d: Buffer) => (out += d.toString()));
        const exited = new Promise<number | string>((resolve) =>
          child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
        );
        ctx.defer(async () => {
          child.stdin.end();
          const code = await Promise.race([exited, new Promise((r) => setTimeout(() => r('stuck'), 30_000))]);
          if (code === 'stuck') child.kill('SIGKILL');
        });
        const events = () =>
          out
            .split('\n')
            .filter((l) => l.startsWith('{'))
            .map((l) => JSON.parse(l) as Record<string, unknown>);
        const waitFor = async (event: string, ms: number) => {
          const end = performance.now() + ms;
          for (;;) {
            const found = events().find((e) => e.event === event);
            if (found !== undefined) return found;
            const failed = events().find((e) => e.event === 'failed');
            if (failed !== undefined) throw new Error(`service failed: ${JSON.stringify(failed)}\n${out}`);
            if (performance.now() > end) throw new Error(`no "${event}" within ${ms} ms:\n${out}`);
            await new Promise((r) => setTimeout(r, 100));
          }
        };
        return { child, waitFor };
      });
      await Promise.all(children.map((c) => c.waitFor('ready', 60_000)));
      for (const c of children) c.child.stdin.write('go\n');
      const results = await Promise.all(children.map((c) => c.waitFor('connected', 180_000)));
      const phases = results.map((r) => slotPhase(r.trail as Trail, r.releases as number[]));
      ctx.log(`slot phases (ms, CLOCK_MONOTONIC): ${JSON.stringify(phases)}`);
      ctx.log(`trails: ${JSON.stringify(results.map((r) => (r.trail as Trail).map(([s]) => s)))}`);
      for (const [start, end] of phases) expect(end).toBeGreaterThan(start);
      const [a, b] = [...phases].sort((x, y) => x[0] - y[0]);
      expect(b?.[0]).toBeGreaterThanOrEqual(a?.[1] ?? Infinity);
      expect(results.map((r) => r.adapter)).toEqual([ctx.central, ctx.central]);
      expect((await kernelLinks(ctx, ctx.central)).length).toBe(1);
    },
  },
];

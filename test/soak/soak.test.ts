/**
 * The short soak in `npm test`: a fixed number of fast-check runs of the soak cycle
 * (test/soak/harness.ts), with the seed printed before the runs start. The long soak with the
 * heap verdict is `npm run soak -- --cycles 10000` (a random seed each run).
 *
 * Why a fixed seed here: CI must say something about the change under test, and one open defect
 * (docs/soak.md: a cancelled connect whose cancelling Disconnect hangs can leave a link up) breaks
 * about 2 cycles in 3 300, so a random seed would fail about 3 % of CI runs on it. The long soak
 * and `SOAK_SEED=random` keep exploring new scenarios. Cycles run on real timers, so even a fixed
 * seed does not repeat a run exactly. A failure prints the seed and
 * fast-check's path; replay the shrunk counterexample with
 *   SOAK_SEED=<seed> SOAK_PATH=<path> npx vitest run test/soak/soak.test.ts
 * or the same scenario in the script: npm run soak -- --seed <seed> --path <path>.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { startSoakWorld, type SoakWorld } from './harness.js';
import { soakScenario } from './scenario.js';

const RUNS = 50;
const seedFromEnv = process.env.SOAK_SEED;
const FIXED_SEED = 20261201;
const seed =
  seedFromEnv === 'random'
    ? (Date.now() ^ (Math.random() * 0x100000000)) | 0
    : seedFromEnv === undefined
      ? FIXED_SEED
      : Number(seedFromEnv);
const path = process.env.SOAK_PATH;

let world: SoakWorld | undefined;
beforeAll(async () => {
  world = await startSoakWorld();
});
afterAll(async () => {
  await world?.stop();
});

describe('randomized soak (short)', () => {
  it(`${RUNS} cycles of random devices, faults and cancellations through the pool and establishConnection: every invariant holds after every cycle`, async () => {
    console.log(
      `soak seed ${seed}${path === undefined ? '' : ` path ${path}`} (replay: SOAK_SEED=${seed} npx vitest run test/soak/soak.test.ts)`,
    );
    const w = world;
    if (w === undefined) throw new Error('the soak world did not start');
    await fc.assert(
      fc.asyncProperty(soakScenario, async (scenario) => {
        const result = await w.runCycle(scenario);
        if (result.violations.length > 0) {
          throw new Error(
            `invariants broken in cycle ${w.cycles}:\n  - ${result.violations.join('\n  - ')}\n` +
              `scenario: ${JSON.stringify(scenario)}\noutcomes: ${result.outcomes.join(', ')}`,
          );
        }
      }),
      { numRuns: RUNS, seed, ...(path === undefined ? {} : { path }) },
    );
  }, 300_000);
});

/**
 * `npm run soak -- --cycles 10000 [--seed S] [--path P] [--no-shrink] [--keep-going] [--lanes K]`:
 * the long randomized soak (test/soak/harness.ts) as a script. Each cycle is one fast-check run: a
 * generated scenario (adapters, devices, faults from the simulator's whole catalogue,
 * cancellations) against the pool or establishConnection, then every invariant. Prints progress and
 * the heap after each tenth of the cycles, the outcome counts, and the verdict: every invariant held
 * in every cycle, and the heap of the last 10 % of cycles within 5 % of the first 10 %.
 *
 * The heap is sampled after a full GC between cycles (with lanes: while no lane has a cycle in
 * flight), three ways: V8's heapUsed; the same without V8's code spaces; and, from about five heap
 * snapshots per tenth, every object except those V8 types `code` (compiled code, bytecode and their
 * metadata, much of which lives in old space). The verdict uses the last: the JIT keeps compiling and
 * optimizing functions that only rare scenarios reach for the first ~1 000 cycles, and that is no
 * object the library keeps (docs/soak.md has the measurements, including a run with TurboFan off).
 *
 * A failure prints fast-check's seed and path; `npm run soak -- --seed S --path P` replays exactly
 * that counterexample (the shrunk one), `--seed S` alone the whole run. With `--keep-going` a
 * broken cycle is printed with its replay command (`--seed S --path K`: run K of that seed) and the
 * run goes on, so one long run reports every broken cycle and still gives the heap verdict.
 * `--lanes K` runs K cycles at a time in this one process (most of a cycle is waiting on simulated
 * latencies): lane j has its own dbus-daemon, BluezClient and device addresses and runs seed S+j;
 * its broken cycles print `--seed S+j --path K`, replayed in one lane. Cycles depend on real timers:
 * a replay repeats the scenario, and a race it hit may need a few replays (or the regression test
 * written from it) to show again.
 */
import { writeHeapSnapshot } from 'node:v8';
import fc from 'fast-check';
import {
  startSoakWorld,
  unattributedTimers,
  type CycleResult,
  type SoakWorld,
} from '../../test/soak/harness.js';
import { soakScenario, type SoakScenario } from '../../test/soak/scenario.js';
import { Quiescence, codeSpaceBytes, snapshotBytes } from './heap.js';

interface Args {
  cycles: number;
  seed: number;
  path: string | undefined;
  shrink: boolean;
  keepGoing: boolean;
  lanes: number;
  snapshotsAt: number[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = {
    cycles: 1000,
    seed: (Date.now() ^ (Math.random() * 0x100000000)) & 0x3fffffff,
    path: undefined,
    shrink: true,
    keepGoing: false,
    lanes: 1,
    snapshotsAt: [],
  };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    const value = (): string => {
      const v = argv[(i += 1)];
      if (v === undefined) throw new RangeError(`${flag} needs a value`);
      return v;
    };
    if (flag === '--cycles') args.cycles = Number(value());
    else if (flag === '--seed') args.seed = Number(value());
    else if (flag === '--path') args.path = value();
    else if (flag === '--no-shrink') args.shrink = false;
    else if (flag === '--keep-going') args.keepGoing = true;
    else if (flag === '--lanes') args.lanes = Number(value());
    else if (flag === '--heap-snapshots') args.snapshotsAt = value().split(',').map(Number);
    else if (flag === '--help') {
      console.log(
        'npm run soak -- [--cycles N (default 1000)] [--seed S] [--path P] [--no-shrink] [--keep-going] [--lanes K]\n' +
          '  --keep-going: a cycle that breaks an invariant is reported with its replay command and the run goes on\n' +
          '  --lanes K: K cycles at a time in this process (default 1), each lane with its own dbus-daemon,\n' +
          '    client and device addresses; lane j runs seed S+j (its broken cycles replay with that seed\n' +
          '    and their path, in one lane); implies --keep-going\n' +
          '  --heap-snapshots N1,N2,…: write a V8 heap snapshot (after a full GC) once N1, N2, … cycles are done',
      );
      process.exit(0);
    } else throw new RangeError(`unknown option ${flag} (try --help)`);
  }
  if (!Number.isInteger(args.cycles) || args.cycles < 10)
    throw new RangeError('--cycles must be an integer >= 10');
  if (!Number.isInteger(args.seed)) throw new RangeError('--seed must be an integer');
  if (!Number.isInteger(args.lanes) || args.lanes < 1 || args.lanes > 32)
    throw new RangeError('--lanes must be an integer from 1 to 32');
  if (args.lanes > 1 && args.path !== undefined)
    throw new RangeError('--path replays one scenario: use it without --lanes');
  if (args.snapshotsAt.some((n) => !Number.isInteger(n) || n < 1))
    throw new RangeError('--heap-snapshots takes cycle counts >= 1, comma-separated');
  if (args.lanes > 1) args.keepGoing = true;
  return args;
}

const maybeGc = (globalThis as { gc?: () => void }).gc;
if (maybeGc === undefined) throw new Error('run with node --expose-gc (npm run soak does)');
const gc: () => void = maybeGc;

const mb = (bytes: number): string => `${(bytes / 1048576).toFixed(2)} MB`;
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const worlds: SoakWorld[] = [];
  // Made before the lanes start, so that its interval is not one of theirs.
  const lastCycles = Array.from({ length: args.lanes }, () => 0);
  const sameSince = Array.from({ length: args.lanes }, () => Date.now());
  const finished = Array.from({ length: args.lanes }, () => false);
  const hangWatch = setInterval(() => {
    worlds.forEach((world, j) => {
      if (finished[j]) return;
      if (world.cycles !== lastCycles[j]) {
        lastCycles[j] = world.cycles;
        sameSince[j] = Date.now();
      } else if (Date.now() - sameSince[j]! > 10_000) {
        console.log(
          `lane ${j}: cycle ${world.cycles} has run for ${Math.round((Date.now() - sameSince[j]!) / 1000)} s: ${world.phase}`,
        );
      }
    });
  }, 5_000);
  hangWatch.unref();
  try {
    for (let lane = 0; lane < args.lanes; lane += 1) worlds.push(await startSoakWorld({ lane }));
  } catch (err) {
    clearInterval(hangWatch);
    for (const w of worlds) await w.stop();
    throw err;
  }
  const started = Date.now();
  const tenth = Math.ceil(args.cycles / 10);
  // Heap after a full GC, sampled every `sampleEvery` cycles between cycles (no cycle of any lane in
  // flight), grouped by tenth of the run.
  const sampleEvery = Math.max(1, Math.floor(tenth / 50));
  const heapByTenth: number[][] = Array.from({ length: 10 }, () => []);
  // The same without V8's code spaces: machine code the JIT makes for paths that only rare
  // scenarios take; no object the library keeps.
  const dataByTenth: number[][] = Array.from({ length: 10 }, () => []);
  // From a heap snapshot (about 5 per tenth, they take a second or two each): every object except
  // those of V8's type `code` (compiled code, bytecode and their metadata, part of which lives in
  // old space: deoptimization data, relocation info, source positions). The verdict's measure.
  const snapshotEvery = Math.max(1, Math.floor(tenth / sampleEvery / 5));
  const objectsByTenth: number[][] = Array.from({ length: 10 }, () => []);
  const quiet = new Quiescence();
  const outcomes = new Map<string, number>();
  let mainRuns = 0;
  const phaseTotals: number[] = [];
  const brokenCycles: string[] = [];
  let failing = false;
  const apis = { pool: 0, establish: 0 };
  const seeds = worlds.map((w) => args.seed + w.lane);
  console.log(
    `soak: ${args.cycles} cycles, seed ${args.seed}${args.path ? `, path ${args.path}` : ''}` +
      (args.lanes > 1
        ? `; ${args.lanes} lanes at a time in this process (lane j: seed ${args.seed}+j, its own dbus-daemon, client and device addresses)`
        : '') +
      `; private dbus-daemon pid ${worlds.map((w) => w.bus.pid).join(', ')}; heap sampled after a full GC every ${sampleEvery} cycle(s)`,
  );

  // Every lane's cycles feed one tally (progress, heap samples, outcomes) in completion order.
  const tally = (
    world: SoakWorld,
    laneRun: number,
    scenario: SoakScenario,
    result: CycleResult,
    broken: string | undefined,
  ): void => {
    mainRuns += 1;
    result.phasesMs.forEach((ms, i) => (phaseTotals[i] = (phaseTotals[i] ?? 0) + ms));
    apis[scenario.api] += 1;
    for (const o of result.outcomes) {
      const key = o.replace(/^\S+ /, '');
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    }
    if (broken !== undefined && args.keepGoing) {
      // Without shrinking, run k (from 0) of a seed is replayed by --path k.
      const replay = `npm run soak -- --seed ${seeds[world.lane]} --path ${laneRun}${args.path === undefined ? '' : ` (after ${args.path})`}`;
      brokenCycles.push(replay);
      console.log(`${broken}\nreplay: ${replay}`);
    }
    const t = Math.min(9, Math.floor((mainRuns - 1) / tenth));
    if (mainRuns % sampleEvery === 0) {
      quiet.request(async () => {
        gc();
        const used = process.memoryUsage().heapUsed;
        heapByTenth[t]!.push(used);
        dataByTenth[t]!.push(used - codeSpaceBytes());
        if (heapByTenth[t]!.length % snapshotEvery === 0) {
          const { total, code } = await snapshotBytes();
          objectsByTenth[t]!.push(total - code);
        }
      });
    }
    if (args.snapshotsAt.includes(mainRuns)) {
      const done = mainRuns;
      quiet.request(() => {
        gc();
        console.log(`heap snapshot after ${done} cycles: ${writeHeapSnapshot()}`);
      });
    }
    if (mainRuns % tenth === 0 || mainRuns === args.cycles) {
      const done = mainRuns;
      const broken = brokenCycles.length;
      const pool = apis.pool;
      quiet.request(() => {
        const secs = (Date.now() - started) / 1000;
        console.log(
          `[${String(Math.round((done / args.cycles) * 100)).padStart(3)} %] ${done} cycles in ${secs.toFixed(0)} s ` +
            `(${(done / secs).toFixed(1)}/s; pool ${pool}, establish ${done - pool}); heap ${mb(mean(heapByTenth[t]!))}, without code spaces ${mb(mean(dataByTenth[t]!))} ` +
            `(mean of ${heapByTenth[t]!.length}), objects without V8 code ${mb(mean(objectsByTenth[t]!))} (mean of ${objectsByTenth[t]!.length}); ` +
            `${broken === 0 ? 'invariants held in every cycle so far' : `${broken} cycle(s) broke an invariant`}`,
        );
      });
    }
  };

  const runLane = async (world: SoakWorld, numRuns: number): Promise<void> => {
    let laneRuns = 0;
    await fc.assert(
      fc.asyncProperty(soakScenario, async (scenario) => {
        await quiet.enter();
        let result: CycleResult;
        try {
          result = await world.runCycle(scenario);
        } finally {
          quiet.leave();
        }
        const broken =
          result.violations.length === 0
            ? undefined
            : `invariants broken in cycle ${world.cycles}${args.lanes > 1 ? ` of lane ${world.lane}` : ''}:\n  - ${result.violations.join('\n  - ')}\n` +
              `scenario: ${JSON.stringify(scenario)}\noutcomes: ${result.outcomes.join(', ')}`;
        if (!failing) {
          tally(world, laneRuns, scenario, result, broken);
          laneRuns += 1;
        }
        if (broken !== undefined && !args.keepGoing) {
          failing = true;
          throw new Error(broken);
        }
      }),
      {
        numRuns,
        seed: seeds[world.lane]!,
        ...(args.path === undefined ? {} : { path: args.path }),
        endOnFailure: !args.shrink,
      },
    );
  };

  try {
    await Promise.all(
      worlds.map((world, j) =>
        runLane(world, Math.floor(args.cycles / args.lanes) + (j < args.cycles % args.lanes ? 1 : 0)).finally(
          () => {
            finished[j] = true;
          },
        ),
      ),
    );
  } catch (err) {
    console.log(String(err instanceof Error ? err.message : err));
    const cause = err instanceof Error ? err.cause : undefined;
    if (cause instanceof Error) console.log(`\n${cause.message}`);
    console.log(
      `\nreproduce: npm run soak -- --cycles ${args.cycles} --seed ${args.seed} (the whole run), or with the --path printed above for the shrunk counterexample alone`,
    );
    for (const w of worlds) await w.stop();
    process.exitCode = 1;
    return;
  }
  await quiet.drained();
  const unattributed = unattributedTimers();
  for (const w of worlds) await w.stop();
  const change = (byTenth: number[][]): number => (mean(byTenth[9]!) - mean(byTenth[0]!)) / mean(byTenth[0]!);
  const verdictOn = objectsByTenth.every((x) => x.length > 0) ? objectsByTenth : dataByTenth;
  const verdictName =
    verdictOn === objectsByTenth
      ? 'heap objects without V8 code (heap snapshots)'
      : 'heap without code spaces';
  const flat = Math.abs(change(verdictOn)) <= 0.05;
  const pct = (x: number): string => `${(x * 100).toFixed(2)} %`;
  console.log(
    `mean per cycle: start simulator ${(phaseTotals[0]! / mainRuns).toFixed(0)} ms, scenario ${(phaseTotals[1]! / mainRuns).toFixed(0)} ms, ` +
      `stop simulator ${(phaseTotals[2]! / mainRuns).toFixed(0)} ms, leak checks ${(phaseTotals[3]! / mainRuns).toFixed(0)} ms`,
  );
  if (args.lanes > 1)
    console.log(
      `timers created outside every lane's context (charged to no cycle's leak check): ${unattributed}`,
    );
  console.log(`\noutcomes over ${mainRuns} cycles: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  console.log(
    `heap per tenth (after a full GC, between cycles): ${heapByTenth.map((h) => mb(mean(h))).join(', ')} (last vs first ${pct(change(heapByTenth))})\n` +
      `without code spaces: ${dataByTenth.map((h) => mb(mean(h))).join(', ')} (last vs first ${pct(change(dataByTenth))})\n` +
      `objects without V8 code (heap snapshots): ${objectsByTenth.map((h) => mb(mean(h))).join(', ')} (last vs first ${pct(change(objectsByTenth))})\n` +
      `verdict: ${brokenCycles.length === 0 ? `every invariant held in all ${mainRuns} cycles` : `${brokenCycles.length} of ${mainRuns} cycles broke an invariant (replay: ${brokenCycles.join('; ')})`}; ` +
      `${verdictName} last 10 % ${mb(mean(verdictOn[9]!))} vs first 10 % ${mb(mean(verdictOn[0]!))} ` +
      `(${pct(change(verdictOn))}): ${flat ? 'within 5 %: flat' : 'NOT within 5 %'}; ${((Date.now() - started) / 1000).toFixed(0)} s`,
  );
  if (!flat || brokenCycles.length > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});

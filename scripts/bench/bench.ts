/**
 * `npm run bench`: how much time the library adds on top of BlueZ. A script that prints figures,
 * not a test (nothing here asserts; the goals are printed next to the numbers).
 *
 * 1. Connect ratio: establishConnection vs a bare Device1.Connect → ServicesResolved (bare.ts),
 *    side by side in one run, in alternating pairs (which one goes first alternates too), median
 *    of each. On the simulator with realistic latencies (latencyScale 1), and with `--real` on
 *    bluetoothd 5.66 in the real-BlueZ tier's qemu guest (run it as
 *    `flock /tmp/bluez-vm.lock npm run bench -- --real`; one guest at a time per machine).
 * 2. Per fault, on the simulator with realistic latencies and the library's default options:
 *    time until establishConnection resolves, minus the simulator's own BlueZ time for the calls
 *    it answered (bluez-time.ts says how that is computed).
 *
 * Options: --pairs N (default 9), --runs N per fault (default 3), --real, --no-sim-ratio,
 * --no-faults.
 */
import { openBluez } from '../../src/bluez/client.js';
import type { BluezClient } from '../../src/bluez/client-types.js';
import { establishConnection } from '../../src/connection/establish.js';
import type { EstablishOptions } from '../../src/connection/options.js';
import {
  resolveTiming,
  startSimulatedBluez,
  type DeviceSpec,
  type Scenario,
  type SimTiming,
  type SimulatedBluez,
} from '../../src/testing/index.js';
import { openBare } from './bare.js';
import { bluezTimeMs, median } from './bluez-time.js';

const BATTERY_SERVICE = '0000180f-0000-1000-8000-00805f9b34fb';
const BATTERY_LEVEL = '00002a19-0000-1000-8000-00805f9b34fb';
const DEVICE = 'AA:BB:CC:DD:EE:01';
const OTHER = 'AA:BB:CC:DD:EE:02';
const GOAL_RATIO = 1.05;
const GOAL_OVERHEAD_MS = 100;

function bms(knownOn: string[], address = DEVICE): DeviceSpec {
  return {
    address,
    name: 'bms',
    addressType: 'random',
    rssi: -58,
    knownOn,
    uuids: [BATTERY_SERVICE],
    services: [
      {
        uuid: BATTERY_SERVICE,
        characteristics: [{ uuid: BATTERY_LEVEL, flags: ['read', 'notify'], value: [87] }],
      },
    ],
  };
}

interface Args {
  pairs: number;
  runs: number;
  real: boolean;
  simRatio: boolean;
  faults: boolean;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { pairs: 9, runs: 3, real: false, simRatio: true, faults: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const count = (name: string): number => {
      const n = Number(argv[++i]);
      if (!Number.isInteger(n) || n < 1) throw new RangeError(`${name} needs an integer >= 1`);
      return n;
    };
    if (a === '--pairs') args.pairs = count('--pairs');
    else if (a === '--runs') args.runs = count('--runs');
    else if (a === '--real') args.real = true;
    else if (a === '--no-sim-ratio') args.simRatio = false;
    else if (a === '--no-faults') args.faults = false;
    else
      throw new TypeError(
        `unknown option ${String(a)} (--pairs N, --runs N, --real, --no-sim-ratio, --no-faults)`,
      );
  }
  return args;
}

const fmt = (ms: number): string => ms.toFixed(0).padStart(6);

interface RatioResult {
  bare: number[];
  managed: number[];
  /** Samples that failed (reported, not counted). */
  failures: string[];
}

/**
 * Alternating pairs of bare and managed connects of `address` on `adapter`; `prepare` runs (not
 * timed) before each connect, e.g. to make sure BlueZ still knows the device.
 */
async function measureRatio(
  bluez: BluezClient,
  busAddress: string,
  adapter: string,
  address: string,
  pairs: number,
  prepare: () => Promise<void> = async () => {},
  settleMs = 0,
): Promise<RatioResult> {
  const bare = await openBare(busAddress);
  const result: RatioResult = { bare: [], managed: [], failures: [] };
  try {
    const sample = async (list: number[], what: string, run: () => Promise<number>) => {
      await prepare();
      try {
        list.push(await run());
      } catch (err) {
        result.failures.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
      }
      // Not timed: BlueZ (and our mirror) back to "not connected" before the next sample, so no
      // sample adopts or races the previous sample's teardown.
      await bluez.mirror
        .waitFor((m) => !(m.device(adapter, address)?.connected ?? false), { timeoutMs: 30_000 })
        .catch(() => undefined);
      await new Promise((r) => setTimeout(r, settleMs));
    };
    const runBare = () =>
      sample(result.bare, 'bare', async () => {
        const ms = await bare.connect(adapter, address, 30_000);
        await bare.disconnect(adapter, address, 30_000);
        return ms;
      });
    const runManaged = () =>
      sample(result.managed, 'managed', async () => {
        const t0 = performance.now();
        const connection = await establishConnection({ bluez, address, adapters: [adapter] });
        const ms = performance.now() - t0;
        await connection.disconnect();
        return ms;
      });
    for (let i = 0; i < pairs; i++) {
      if (i % 2 === 0) {
        await runBare();
        await runManaged();
      } else {
        await runManaged();
        await runBare();
      }
    }
  } finally {
    bare.close();
  }
  return result;
}

function printRatio(where: string, r: RatioResult): void {
  const bare = median(r.bare);
  const managed = median(r.managed);
  const ratio = managed / bare;
  console.log(
    `${where.padEnd(34)} bare ${fmt(bare)} ms   managed ${fmt(managed)} ms   ratio ${ratio.toFixed(3)}` +
      `   (goal ≤ ${GOAL_RATIO}: ${ratio <= GOAL_RATIO ? 'met' : 'NOT met'}; ${r.bare.length}+${r.managed.length} samples)`,
  );
  console.log(`${''.padEnd(34)} bare    ${r.bare.map((v) => v.toFixed(0)).join(' ')}`);
  console.log(`${''.padEnd(34)} managed ${r.managed.map((v) => v.toFixed(0)).join(' ')}`);
  for (const f of r.failures) console.log(`${''.padEnd(34)} failed sample: ${f}`);
}

async function simRatio(pairs: number): Promise<void> {
  // Realistic latencies for everything on the connect path; the 2 s disconnect delay is shortened
  // only to keep the run short (it is outside both timed windows).
  const timing: Partial<SimTiming> = { disconnectMs: 100 };
  const env = await startSimulatedBluez({
    latencyScale: 1,
    timing,
    scenario: { adapters: [{ name: 'hci0' }], devices: [bms(['hci0'])] },
  });
  try {
    const bluez = await openBluez({ busAddress: env.address });
    try {
      printRatio('simulator (latencyScale 1)', await measureRatio(bluez, env.address, 'hci0', DEVICE, pairs));
    } finally {
      await bluez.close();
    }
  } finally {
    await env.stop();
  }
}

interface FaultCase {
  readonly name: string;
  readonly scenario: Scenario;
  /** Puts the fault in place (not timed). */
  setup(env: SimulatedBluez, bluez: BluezClient): Promise<void>;
  readonly options: Partial<EstablishOptions>;
  readonly lateGattMs?: number;
}

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const LATE_MS = 1500;

const FAULTS: readonly FaultCase[] = [
  {
    name: 'clean',
    scenario: { adapters: [{ name: 'hci0' }], devices: [bms(['hci0'])] },
    setup: async () => {},
    options: { adapters: ['hci0'] },
  },
  {
    name: 'phantom (closeInactiveConnections)',
    scenario: { adapters: [{ name: 'hci0' }], devices: [bms(['hci0'])] },
    setup: async (env, bluez) => {
      env.sim.inject({ kind: 'phantom', target: { device: DEVICE } }).clear();
      await until('the mirror to see the phantom', () => bluez.isPhantom('hci0', DEVICE));
    },
    options: { adapters: ['hci0'], closeInactiveConnections: true },
  },
  {
    name: `late GATT (${LATE_MS} ms)`,
    scenario: { adapters: [{ name: 'hci0' }], devices: [bms(['hci0'])] },
    setup: async (env) => {
      env.sim.inject({ kind: 'late-gatt', target: { device: DEVICE }, ms: LATE_MS });
    },
    options: { adapters: ['hci0'] },
    lateGattMs: LATE_MS,
  },
  {
    name: 'stale InProgress',
    scenario: { adapters: [{ name: 'hci0' }], devices: [bms(['hci0'])] },
    setup: async (env) => {
      env.sim.inject({ kind: 'stale-in-progress', target: { device: DEVICE } });
    },
    options: { adapters: ['hci0'] },
  },
  {
    name: 'RF abort (link up 100 ms)',
    scenario: { adapters: [{ name: 'hci0' }], devices: [bms(['hci0'])] },
    setup: async (env) => {
      env.sim.inject({ kind: 'rf-abort', target: { device: DEVICE }, count: 1, linkUpMs: 100 });
    },
    options: { adapters: ['hci0'] },
  },
  {
    name: 'out of slots on hci0, hci1 free',
    scenario: {
      adapters: [{ name: 'hci0' }, { name: 'hci1' }],
      devices: [bms(['hci0', 'hci1']), bms(['hci0'], OTHER)],
    },
    setup: async (env, bluez) => {
      env.sim.inject({ kind: 'slot-limit', target: { adapter: 'hci0' }, slots: 1 });
      await bluez.connect('hci0', OTHER, { waitServicesResolved: true, timeoutMs: 10_000 });
    },
    options: { adapters: ['hci0', 'hci1'], slotsPerAdapter: 1 },
  },
];

interface FaultRun {
  totalMs: number;
  bluezMs: number;
  attempts: number;
}

async function runFault(fault: FaultCase): Promise<FaultRun> {
  const env = await startSimulatedBluez({ latencyScale: 1, scenario: fault.scenario });
  try {
    const bluez = await openBluez({ busAddress: env.address });
    try {
      await fault.setup(env, bluez);
      env.sim.clearCalls();
      const t0 = performance.now();
      const connection = await establishConnection({ bluez, address: DEVICE, ...fault.options });
      const totalMs = performance.now() - t0;
      const calls = [...env.sim.calls];
      const bluezMs = Math.min(
        totalMs,
        bluezTimeMs(
          calls,
          resolveTiming(1),
          fault.lateGattMs === undefined ? {} : { lateGattMs: fault.lateGattMs },
        ),
      );
      const attempts = connection.attempts.length;
      await connection.disconnect();
      return { totalMs, bluezMs, attempts };
    } finally {
      await bluez.close();
    }
  } finally {
    await env.stop();
  }
}

async function faults(runs: number): Promise<void> {
  console.log(
    '\nPer fault, simulator with realistic latencies, default options (median of ' + runs + ' runs):',
  );
  console.log(
    `${'fault'.padEnd(36)}${'total'.padStart(9)}${'BlueZ'.padStart(9)}${'overhead'.padStart(10)}  attempts  goal ≤ ${GOAL_OVERHEAD_MS} ms`,
  );
  for (const fault of FAULTS) {
    const results: FaultRun[] = [];
    for (let i = 0; i < runs; i++) results.push(await runFault(fault));
    const total = median(results.map((r) => r.totalMs));
    const bluezMs = median(results.map((r) => r.bluezMs));
    const overhead = median(results.map((r) => r.totalMs - r.bluezMs));
    const attempts = median(results.map((r) => r.attempts));
    console.log(
      `${fault.name.padEnd(36)}${fmt(total)} ms${fmt(bluezMs)} ms${fmt(overhead)} ms  ${String(attempts).padStart(8)}  ${overhead <= GOAL_OVERHEAD_MS ? 'met' : 'NOT met'}`,
    );
  }
}

async function realRatio(pairs: number): Promise<void> {
  // Loaded here so the simulator-only run needs nothing from the VM tier.
  const { RealBluezTarget } = await import('../../test/bluez-vm/real-target.js');
  const { PERIPHERAL_ADDRESS } = await import('../../test/conformance/peripheral-spec.js');
  const target = await RealBluezTarget.create();
  try {
    await target.reset();
    const bluez = await openBluez({ busAddress: target.busAddress });
    try {
      const known = async () => {
        if (bluez.device('hci0', PERIPHERAL_ADDRESS) !== undefined) return;
        await bluez.startDiscovery('hci0', { timeoutMs: 10_000 });
        try {
          await bluez.mirror.waitFor((m) => m.device('hci0', PERIPHERAL_ADDRESS), {
            timeoutMs: 30_000,
            description: 'the peripheral discovered on hci0',
          });
        } finally {
          await bluez.stopDiscovery('hci0', { timeoutMs: 10_000 }).catch(() => {});
          await bluez.mirror
            .waitFor((m) => m.adapter('hci0')?.discovering === false, { timeoutMs: 10_000 })
            .catch(() => {});
        }
      };
      printRatio(
        'real bluetoothd 5.66 (qemu guest)',
        await measureRatio(bluez, target.busAddress, 'hci0', PERIPHERAL_ADDRESS, pairs, known, 500),
      );
    } finally {
      await bluez.close();
    }
  } finally {
    await target.close();
  }
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  console.log(`bluez-connection-manager benchmark (node ${process.version}, ${new Date().toISOString()})`);
  console.log('\nConnect: establishConnection vs bare Device1.Connect → ServicesResolved (medians):');
  if (args.simRatio) await simRatio(args.pairs);
  if (args.real) await realRatio(args.pairs);
  if (args.faults) await faults(args.runs);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);

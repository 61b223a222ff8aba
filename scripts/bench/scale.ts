/**
 * `npm run bench:scale [-- --n 100,300,1000] [--idle-s 10] [--warmup 50]`: many devices through one
 * adapter pool. A script that prints figures (nothing here asserts; the goals are printed next to
 * the numbers, and ratios are measured within one run). A warm-up round of `--warmup` devices runs
 * first and is printed apart (the process's first connects run on unoptimised code; 0 skips it).
 *
 * Per N: the simulator (scale-sim.ts, its own process) serves N devices on 8 adapters at latency
 * scale 0.01, every device known on every adapter; this process opens a BluezClient and a pool
 * with slots for every device, asks for all N at once (`pool.connected`), and prints:
 * - time until all settled, and its growth against the smallest N;
 * - event-loop delay p50/p99 while connecting (perf_hooks.monitorEventLoopDelay);
 * - heap per connected device (after GC, against the heap before the pool was created);
 * - idle: messages our connection sent to the bus per second (dbus-daemon's Debug.Stats) and
 *   this process's CPU % over `--idle-s` seconds after all connected;
 * - match rules our connection holds (Debug.Stats), error replies named LimitsExceeded that the
 *   daemon sent us (a monitor in the simulator's process counts them);
 * - after disconnecting every device and closing the pool: links left in the simulator, match
 *   rules beyond the mirror's own, timers, mirror waits/listeners, admission queue.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { cpus, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { openBluez } from '../../src/bluez/client.js';
import { MIRROR_MATCH_RULES } from '../../src/bluez/mirror.js';
import { createAdapterPool } from '../../src/pool/create-adapter-pool.js';
import { connectAdmission } from '../../src/actors/connect-admission.js';
import { SCALE_ADAPTERS, scaleAddress } from './scale-common.js';

const GOALS = {
  growth: 12,
  loopP99Ms: 50,
  heapPerDeviceKB: 20,
  idleMessagesPerS: 0,
  idleCpuPercent: 1,
};

interface Args {
  ns: number[];
  idleS: number;
  warmup: number;
}

function parseArgs(argv: readonly string[]): Args {
  const args: Args = { ns: [100, 300, 1000], idleS: 10, warmup: 50 };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--n') {
      args.ns = String(argv[++i])
        .split(',')
        .map((x) => Number(x));
      if (args.ns.some((n) => !Number.isInteger(n) || n < 1))
        throw new RangeError('--n needs integers >= 1, e.g. 100,300,1000');
    } else if (a === '--idle-s') {
      args.idleS = Number(argv[++i]);
      if (!Number.isFinite(args.idleS) || args.idleS <= 0)
        throw new RangeError('--idle-s needs a number > 0');
    } else if (a === '--warmup') {
      args.warmup = Number(argv[++i]);
      if (!Number.isInteger(args.warmup) || args.warmup < 0)
        throw new RangeError('--warmup needs an integer >= 0 (0: no warm-up round)');
    } else {
      throw new TypeError(`unknown option ${String(a)} (--n LIST, --idle-s S, --warmup N)`);
    }
  }
  return args;
}

interface SimStats {
  stats: Record<string, number>;
  rules: number;
  links: number;
  errors: Record<string, number>;
  errorsToName: Record<string, number>;
}

class Sim {
  private nextId = 1;
  private readonly pending = new Map<number, (reply: Record<string, unknown>) => void>();
  private constructor(
    private readonly child: ChildProcess,
    readonly address: string,
  ) {
    child.on('message', (m: Record<string, unknown>) => {
      const resolve = this.pending.get(m.id as number);
      if (resolve === undefined) return;
      this.pending.delete(m.id as number);
      resolve(m);
    });
  }

  static async start(n: number): Promise<Sim> {
    const here = dirname(fileURLToPath(import.meta.url));
    const child = fork(join(here, 'scale-sim.js'), [String(n)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const address = await new Promise<string>((resolve, reject) => {
      child.once('message', (m: { ready?: boolean; address?: string }) => {
        if (m.ready === true && typeof m.address === 'string') resolve(m.address);
        else reject(new Error('the simulator process did not start'));
      });
      child.once('exit', (code) => reject(new Error(`the simulator process exited (${String(code)})`)));
    });
    return new Sim(child, address);
  }

  private request(body: Record<string, unknown>): Promise<Record<string, unknown>> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.child.send({ id, ...body });
    });
  }

  async stats(name: string): Promise<SimStats> {
    const r = await this.request({ cmd: 'stats', name });
    if (r.ok !== true) throw new Error(String(r.error));
    return r as unknown as SimStats;
  }

  async stop(): Promise<void> {
    const exited = new Promise((r) => this.child.once('exit', r));
    await this.request({ cmd: 'stop' });
    await exited;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (collect === undefined) throw new Error('run with node --expose-gc (npm run bench:scale does)');
  collect();
  collect();
}

function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

/** Runs `work` over `items`, at most `limit` at once. */
async function pooled<T>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

interface Row {
  n: number;
  /** The machine's 1-minute load average while connecting (other processes delay our event loop too). */
  load: number;
  /**
   * This process's CPU time while connecting, per device: unlike wall time and loop delay it does
   * not grow with other processes' load, so its growth with N shows the library's own complexity.
   */
  cpuMsPerDevice: number;
  connected: number;
  failed: Record<string, number>;
  allMs: number;
  loopP50: number;
  loopP99: number;
  loopMax: number;
  heapPerDeviceKB: number;
  idleMsgsPerS: number;
  idleCpu: number;
  rulesConnected: number;
  limitsExceeded: number;
  after: {
    links: number;
    extraRules: number;
    timers: number;
    waits: number;
    pathListeners: number;
    listeners: number;
    admission: number;
    locks: number;
  };
}

async function runOne(n: number, idleS: number): Promise<Row> {
  const sim = await Sim.start(n);
  const bluez = await openBluez({ busAddress: sim.address });
  try {
    await bluez.mirror.waitFor((m) => m.devices().length >= n * SCALE_ADAPTERS, { timeoutMs: 60_000 });
    const me = bluez.uniqueName ?? '';
    await sleep(200);
    gc();
    const heap0 = process.memoryUsage().heapUsed;
    const timers0 = timers();
    const listeners0 = bluez.mirror.totalListenerCount();

    const pool = createAdapterPool({ bluez, slotsPerAdapter: Math.ceil(n / SCALE_ADAPTERS) });
    const addresses = Array.from({ length: n }, (_, i) => scaleAddress(i));
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const t0 = performance.now();
    const connectCpu0 = process.cpuUsage();
    const results = await Promise.allSettled(
      addresses.map((a) => pool.connected(a, { signal: AbortSignal.timeout(900_000) })),
    );
    const allMs = performance.now() - t0;
    const connectCpu = process.cpuUsage(connectCpu0);
    loop.disable();
    const load = loadavg()[0] ?? 0;
    const failed: Record<string, number> = {};
    for (const r of results) {
      if (r.status === 'fulfilled') continue;
      const e = r.reason as { code?: string; message?: string };
      const key = e.code ?? e.message ?? String(r.reason);
      failed[key] = (failed[key] ?? 0) + 1;
    }
    const connected = results.filter((r) => r.status === 'fulfilled').length;

    await sleep(500);
    gc();
    const heapPerDeviceKB = (process.memoryUsage().heapUsed - heap0) / 1024 / Math.max(1, connected);

    const before = await sim.stats(me);
    const cpu0 = process.cpuUsage();
    const w0 = performance.now();
    await sleep(idleS * 1000);
    const wallMs = performance.now() - w0;
    const cpu = process.cpuUsage(cpu0);
    const after = await sim.stats(me);
    // Incoming at the daemon = sent by us; the stats call itself is the simulator's, not ours.
    const idleMsgsPerS =
      ((after.stats.IncomingMessages ?? 0) - (before.stats.IncomingMessages ?? 0)) / (wallMs / 1000);
    const idleCpu = ((cpu.user + cpu.system) / 1000 / wallMs) * 100;

    // Leave nothing: every device disconnected through the pool (a bounded number at a time), then
    // the pool closed.
    await pooled(addresses, 16, (a) => pool.disconnect(a));
    const locks = pool.heldLocks;
    await pool.close();
    await sleep(300);
    const end = await sim.stats(me);
    const row: Row = {
      n,
      load,
      cpuMsPerDevice: (connectCpu.user + connectCpu.system) / 1000 / n,
      connected,
      failed,
      allMs,
      loopP50: loop.percentile(50) / 1e6,
      loopP99: loop.percentile(99) / 1e6,
      loopMax: loop.max / 1e6,
      heapPerDeviceKB,
      idleMsgsPerS,
      idleCpu,
      rulesConnected: after.rules,
      limitsExceeded: end.errorsToName['org.freedesktop.DBus.Error.LimitsExceeded'] ?? 0,
      after: {
        links: end.links,
        extraRules: end.rules - MIRROR_MATCH_RULES.length,
        timers: timers() - timers0,
        waits: bluez.mirror.pendingWaits,
        pathListeners: bluez.mirror.pathListenerCount,
        listeners: bluez.mirror.totalListenerCount() - listeners0,
        admission: connectAdmission(bluez).size,
        locks,
      },
    };
    return row;
  } finally {
    await bluez.close();
    await sim.stop();
  }
}

function print(rows: readonly Row[], warmup: Row | undefined): void {
  const base = rows[0];
  const last = rows[rows.length - 1];
  if (base === undefined || last === undefined) return;
  const lines: string[] = [];
  const f = (x: number, d = 1) => x.toFixed(d);
  lines.push(
    `bench:scale — pool over the simulator (${SCALE_ADAPTERS} adapters, latency scale 0.01, stock dbus-daemon limits), node ${process.version}`,
  );
  if (warmup !== undefined) {
    const f1 = (x: number) => x.toFixed(1);
    lines.push(
      `warm-up round, not counted (the process's first connects run on cold, not yet optimised code): N=${warmup.n} ${warmup.connected}/${warmup.n} connected in ${(warmup.allMs / 1000).toFixed(2)} s, loop p50/p99/max ${f1(warmup.loopP50)}/${f1(warmup.loopP99)}/${f1(warmup.loopMax)} ms`,
    );
  }
  lines.push(
    '     N  connected   all in (s)  growth   loop p50/p99/max (ms)   heap/dev (KB)  idle msg/s  idle CPU %  rules  LimitsExceeded',
  );
  for (const r of rows) {
    const growth = r.allMs / base.allMs;
    lines.push(
      `${String(r.n).padStart(6)}  ${`${r.connected}/${r.n}`.padStart(9)}  ${f(r.allMs / 1000, 2).padStart(11)}  ${`${f(growth, 2)}×`.padStart(6)}  ${`${f(r.loopP50)}/${f(r.loopP99)}/${f(r.loopMax)}`.padStart(22)}  ${f(r.heapPerDeviceKB).padStart(14)}  ${f(r.idleMsgsPerS, 2).padStart(10)}  ${f(r.idleCpu, 2).padStart(10)}  ${String(r.rulesConnected).padStart(5)}  ${String(r.limitsExceeded).padStart(14)}`,
    );
    lines.push(
      `        CPU while connecting: ${f(r.cpuMsPerDevice, 2)} ms per device (${f(r.cpuMsPerDevice / base.cpuMsPerDevice, 2)}× N=${base.n}); load average (1 min) at the end: ${f(r.load, 2)} on ${cpus().length} CPUs`,
    );
    if (Object.keys(r.failed).length > 0) lines.push(`        failed: ${JSON.stringify(r.failed)}`);
    const a = r.after;
    lines.push(
      `        after disconnect-all + close(): links ${a.links}, match rules beyond the mirror's ${a.extraRules}, timers ${a.timers >= 0 ? '+' : ''}${a.timers}, mirror waits ${a.waits}, path listeners ${a.pathListeners}, listeners +${a.listeners}, admission ${a.admission}, locks ${a.locks}`,
    );
  }
  lines.push(
    `goals: N=${last.n} all connected (${last.connected === last.n ? 'met' : 'NOT met'}); time ≤ ${GOALS.growth}× N=${base.n} (${f(last.allMs / base.allMs, 2)}×: ${last.allMs / base.allMs <= GOALS.growth ? 'met' : 'NOT met'}); loop p99 ≤ ${GOALS.loopP99Ms} ms at every N (${rows.every((r) => r.loopP99 <= GOALS.loopP99Ms) ? 'met' : 'NOT met'}); ≤ ${GOALS.heapPerDeviceKB} KB heap/device at N=${last.n} (${last.heapPerDeviceKB <= GOALS.heapPerDeviceKB ? 'met' : 'NOT met'}); idle 0 msg/s and < ${GOALS.idleCpuPercent} % CPU (${rows.every((r) => r.idleMsgsPerS === 0 && r.idleCpu < GOALS.idleCpuPercent) ? 'met' : 'NOT met'}); 0 LimitsExceeded (${rows.every((r) => r.limitsExceeded === 0) ? 'met' : 'NOT met'})`,
  );
  console.log(lines.join('\n'));
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const rows: Row[] = [];
  // The first connects of a process run on code V8 has not optimised yet: a short round first, so
  // that the rows compare the library's steady cost (the warm-up's own figures are printed too).
  let warmup: Row | undefined;
  if (args.warmup > 0) {
    console.error(`warm-up N=${args.warmup} …`);
    warmup = await runOne(args.warmup, 1);
  }
  for (const n of args.ns) {
    console.error(`N=${n} …`);
    rows.push(await runOne(n, args.idleS));
  }
  print(rows, warmup);
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

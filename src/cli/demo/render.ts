/**
 * How the demo looks: a table redrawn in place on a terminal, one line per state change when
 * stdout is a pipe or a file (CI logs, `| less`), and a summary. Pure formatting: no I/O here
 * except the `write` function the caller passes.
 */
import type { PoolSnapshot } from '../../index.js';
import type { DemoAdapter, DemoDevice } from './world.js';
import { causeText, type DemoTracker, type DeviceView, type StateChange } from './tracker.js';

const seconds = (ms: number): string => `${(ms / 1000).toFixed(2).padStart(6)}s`;

function fit(text: string, width: number): string {
  if (text.length <= width) return text.padEnd(width);
  return `${text.slice(0, Math.max(0, width - 1))}…`;
}

/** Column widths shared by the table, the lines and the summary. */
export interface Layout {
  readonly name: number;
}

export function layoutFor(devices: readonly DemoDevice[]): Layout {
  return { name: Math.max(6, ...devices.map((d) => d.name.length)) };
}

/** One line per state change (non-TTY output). */
export function changeLine(change: StateChange, device: DemoDevice, layout: Layout, note: string): string {
  const attempt = change.attempt > 0 ? `attempt ${change.attempt}` : '';
  return [
    `[${seconds(change.at)}]`,
    fit(device.name, layout.name),
    fit(change.adapter || '-', 5),
    fit(`${change.from} → ${change.to}`, 34),
    fit(attempt, 10),
    note,
  ]
    .join(' ')
    .trimEnd();
}

/** A log line or a pool decision in the non-TTY stream. */
export function eventLine(at: number, text: string): string {
  return `[${seconds(at)}] ${text}`;
}

function slotBar(used: number, limit: number): string {
  const cells = Math.max(limit, used);
  return `${'█'.repeat(used)}${'░'.repeat(Math.max(0, cells - used))}`;
}

/** The live table (TTY). `columns` is the terminal width. */
export function table(
  tracker: DemoTracker,
  devices: readonly DemoDevice[],
  adapters: readonly DemoAdapter[],
  snapshot: PoolSnapshot,
  layout: Layout,
  columns: number,
  logs: readonly string[],
): string[] {
  const header = `${fit('DEVICE', layout.name)}  ${fit('ADDRESS', 17)}  ${fit('ADAPTER', 7)}  ${fit('STATE', 16)}  ATT  ${fit('TROUBLE', 23)}  LAST`;
  const lines = [header];
  for (const d of devices) {
    const view = tracker.devices.get(d.address);
    const attempts = view === undefined ? 0 : tracker.attemptsOf(d.address).length;
    const pending =
      view !== undefined && [...view.attempts.values()].some((a) => a.outcome === 'pending') ? 1 : 0;
    lines.push(
      `${fit(d.name, layout.name)}  ${d.address}  ${fit(view?.adapter ?? '-', 7)}  ${fit(view?.state ?? '-', 16)}  ${String(attempts + pending).padStart(3)}  ${fit(d.trouble, 23)}  ${view?.note ?? ''}`,
    );
  }
  lines.push('');
  const slots = snapshot.adapters.map((a) => {
    const alias = adapters.find((x) => x.name === a.name)?.alias ?? '';
    const learned = a.learnedLimit === null ? '' : ` (limit learned: ${a.learnedLimit})`;
    return `${a.name} ${alias} ${slotBar(a.inUse.length, a.limit)} ${a.inUse.length}/${a.limit}${learned}${a.powered ? '' : ' POWERED OFF'}`;
  });
  lines.push(slots.join('    '));
  lines.push(
    `queue: ${snapshot.queued.map((q) => devices.find((d) => d.address === q)?.name ?? q).join(', ') || '-'}    elapsed ${(tracker.elapsed() / 1000).toFixed(1)} s`,
  );
  for (const log of logs.slice(-4)) lines.push(`  ${log}`);
  return lines.map((l) => (l.length > columns ? `${l.slice(0, columns - 1)}…` : l));
}

/** Summary data (also the `--json` summary). */
export interface DemoSummary {
  readonly elapsedMs: number;
  readonly latencyScale: number;
  readonly ok: boolean;
  readonly devices: ReadonlyArray<{
    address: string;
    name: string;
    trouble: string;
    expected: string;
    final: string;
    adapter: string | null;
    connects: number;
    linkLosses: number;
    rotations: readonly string[];
    /** Workarounds the library applied, in words. */
    actions: readonly string[];
    attempts: ReadonlyArray<{
      number: number;
      adapter: string;
      outcome: string;
      cause: string | null;
      escalation: string | null;
    }>;
  }>;
  readonly adapters: ReadonlyArray<{
    name: string;
    alias: string;
    configuredSlots: number;
    controllerSlots: number;
    limit: number;
    learnedLimit: number | null;
    /** Most slots the pool had reserved (connecting or connected) at once. */
    peakInUse: number;
    /** Most real links the controller held at once (as BlueZ reports Connected). */
    peakLinks: number;
  }>;
  readonly totals: {
    devices: number;
    connected: number;
    expectedConnected: number;
    failed: number;
    expectedFailed: number;
    attempts: number;
    failedAttempts: number;
    failuresByClass: Record<string, number>;
    linkLosses: number;
    rotations: number;
  };
  /** Devices that did not end as expected, with the reason. */
  readonly unexpected: readonly string[];
  /** Links BlueZ (the simulator) still held after the verified disconnects. */
  readonly linksAfterTeardown: number;
  /** The brown-out of phase 2, or null when it did not run. `backAfterMs`: null if not all came back. */
  readonly powerCut: {
    readonly adapter: string;
    readonly offMs: number;
    readonly linksDropped: number;
    readonly backAfterMs: number | null;
  } | null;
}

/** The summary as text. */
export function summaryText(summary: DemoSummary, layout: Layout): string[] {
  const lines: string[] = [];
  lines.push(
    `Summary after ${(summary.elapsedMs / 1000).toFixed(1)} s (latency scale ${summary.latencyScale}: every BlueZ latency and library timeout × ${summary.latencyScale})`,
  );
  lines.push('');
  lines.push(`${fit('DEVICE', layout.name)}  ${fit('FINAL', 9)}  ${fit('ADAPTER', 7)}  ATT  TROUBLE`);
  for (const d of summary.devices) {
    const mark = d.final === d.expected ? '' : `   ← expected ${d.expected}`;
    lines.push(
      `${fit(d.name, layout.name)}  ${fit(d.final, 9)}  ${fit(d.adapter ?? '-', 7)}  ${String(d.attempts.length).padStart(3)}  ${d.trouble}${mark}`,
    );
    const attempts = d.attempts.map(
      (a) => `#${a.number} ${a.adapter} ${a.cause ?? a.outcome}${a.escalation ? ` → ${a.escalation}` : ''}`,
    );
    lines.push(`    ${[...attempts, ...d.actions].join('; ')}`);
  }
  lines.push('');
  for (const a of summary.adapters) {
    const learned =
      a.learnedLimit === null ? '' : `; after a refused link the pool uses ${a.learnedLimit} as its limit`;
    lines.push(
      `${a.name} ${fit(a.alias, 10)}  slots: peak ${a.peakInUse} reserved by the pool, ${a.peakLinks} real links ` +
        `(configured ${a.configuredSlots}, the controller holds ${a.controllerSlots}${learned})`,
    );
  }
  lines.push('');
  const t = summary.totals;
  const classes = Object.entries(t.failuresByClass)
    .sort((x, y) => y[1] - x[1])
    .map(([c, n]) => `${c} ${n}`)
    .join(', ');
  lines.push(
    `Totals: ${t.connected}/${t.expectedConnected} devices connected as expected, ${t.failed}/${t.expectedFailed} expected failure` +
      `${t.expectedFailed === 1 ? '' : 's'}; ${t.attempts} attempts, ${t.failedAttempts} failed (${classes || 'none'}); ` +
      `${t.linkLosses} link loss${t.linkLosses === 1 ? '' : 'es'} recovered; ${t.rotations} rotation${t.rotations === 1 ? '' : 's'}.`,
  );
  const cut = summary.powerCut;
  if (cut !== null) {
    const back =
      cut.backAfterMs === null
        ? 'not all of them came back'
        : `all ${cut.linksDropped} back ${(cut.backAfterMs / 1000).toFixed(2)} s after power returned`;
    lines.push(
      `Power cut: ${cut.adapter} off for ${(cut.offMs / 1000).toFixed(2)} s, ${cut.linksDropped} links dropped, ${back}.`,
    );
  }
  lines.push(
    `Teardown: verified disconnect of every device; BlueZ holds ${summary.linksAfterTeardown} links.`,
  );
  if (summary.unexpected.length > 0) {
    lines.push('');
    for (const u of summary.unexpected) lines.push(`UNEXPECTED: ${u}`);
  }
  return lines;
}

/** The workarounds a device's actors went through, in words (from the states they visited). */
export function libraryActions(view: DeviceView, firstLateGattDelayMs: number): string[] {
  const out: string[] = [];
  if ([...view.visited].some((s) => s === 'phantom' || s.startsWith('phantom.')))
    out.push('phantom cleared (RemoveDevice, rediscovered)');
  if (view.visited.has('clearing-stale.cancelling-stale-connect'))
    out.push('stale pending connect cancelled');
  if (view.visited.has('clearing-stale.clearing-device-cache')) out.push('BlueZ device cache cleared');
  if (view.visited.has('resetting')) out.push('adapter reset');
  if (view.longestValidatingMs >= firstLateGattDelayMs) {
    out.push(`services appeared late: validated after ${(view.longestValidatingMs / 1000).toFixed(2)} s`);
  }
  if (view.rotations.length > 0) out.push(`rotated ${view.rotations.join(', ')}`);
  if (view.requeues > 0) out.push('waited in the queue for a free slot');
  if (view.linkLosses > 0) {
    out.push(`link lost ${view.linkLosses}×, reconnected ${Math.max(0, view.connects - 1)}×`);
  }
  return out;
}

/** The per-attempt data of the summary. */
export function summarizeAttempts(tracker: DemoTracker, address: string) {
  // Numbered across connect cycles and replaced actors (each cycle restarts at #1 in the machine).
  return tracker.attemptsOf(address).map((a, i) => ({
    number: i + 1,
    adapter: a.adapter,
    outcome: a.outcome,
    cause: a.cause === null ? null : causeText(a),
    escalation: a.escalation,
  }));
}

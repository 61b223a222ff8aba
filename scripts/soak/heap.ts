/**
 * Heap measurement for the soak script: a barrier that takes samples between cycles only (no cycle
 * of any lane in flight, as a one-lane run always measured), and the heap by V8's own object
 * types from a heap snapshot.
 */
import { getHeapSnapshot, getHeapSpaceStatistics } from 'node:v8';

/**
 * Lanes enter before each cycle and leave after it. A requested task (a heap sample) runs as soon as
 * no cycle is in flight; lanes that want to start a cycle meanwhile wait for it to finish.
 */
export class Quiescence {
  private running = 0;
  private due: Array<() => Promise<void> | void> = [];
  private busy: Promise<void> | undefined;
  private waiters: Array<() => void> = [];

  async enter(): Promise<void> {
    while (this.due.length > 0 || this.busy !== undefined) {
      await new Promise<void>((r) => this.waiters.push(r));
    }
    this.running += 1;
  }

  leave(): void {
    this.running -= 1;
    this.maybeRun();
  }

  /** Runs `task` once no cycle is in flight (at once when none is). */
  request(task: () => Promise<void> | void): void {
    this.due.push(task);
    this.maybeRun();
  }

  /** Resolves when every requested task has run. */
  async drained(): Promise<void> {
    while (this.due.length > 0 || this.busy !== undefined) {
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  private maybeRun(): void {
    if (this.running > 0 || this.busy !== undefined || this.due.length === 0) return;
    const tasks = this.due;
    this.due = [];
    this.busy = (async () => {
      for (const task of tasks) await task();
    })().finally(() => {
      this.busy = undefined;
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
      this.maybeRun();
    });
  }
}

/** V8's code spaces (machine code of compiled functions), in use. */
export function codeSpaceBytes(): number {
  return getHeapSpaceStatistics()
    .filter((sp) => sp.space_name.startsWith('code'))
    .reduce((a, sp) => a + sp.space_used_size, 0);
}

/**
 * A heap snapshot's self sizes: all nodes, and those of V8's node type `code` (compiled code,
 * bytecode and their metadata: deoptimization data, relocation info, source position tables,
 * feedback vectors, scope infos…), which lives partly outside the code spaces, in old space.
 */
export async function snapshotBytes(): Promise<{ total: number; code: number }> {
  const chunks: string[] = [];
  const stream = getHeapSnapshot();
  stream.setEncoding('utf8');
  for await (const chunk of stream) chunks.push(chunk as string);
  const snapshot = JSON.parse(chunks.join('')) as {
    snapshot: { meta: { node_fields: string[]; node_types: [string[]] } };
    nodes: number[];
  };
  const fields = snapshot.snapshot.meta.node_fields;
  const width = fields.length;
  const typeAt = fields.indexOf('type');
  const sizeAt = fields.indexOf('self_size');
  const codeType = snapshot.snapshot.meta.node_types[0].indexOf('code');
  let total = 0;
  let code = 0;
  const nodes = snapshot.nodes;
  for (let i = 0; i < nodes.length; i += width) {
    const size = nodes[i + sizeAt]!;
    total += size;
    if (nodes[i + typeAt] === codeType) code += size;
  }
  return { total, code };
}

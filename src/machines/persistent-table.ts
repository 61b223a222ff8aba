/**
 * An immutable table keyed by string (the adapter pool's devices and sightings): `set` and `delete`
 * return a new table that shares every untouched part with the old one (a hash trie, 32 ways per
 * level), so one device's change costs a few small copies, not a copy of every device. The pool's
 * steps stay pure functions of (context, event) and a snapshot never changes after the fact, while
 * an event about one device does work for that device only.
 *
 * Iteration (`values`, `keys`, `entries`) follows insertion order like a plain object's string
 * keys (a key set again keeps its place; one deleted and set again goes to the end); it sorts, so
 * it belongs to whole-table operations (snapshots, an adapter that went away), not per-event paths.
 * `toJSON` gives the plain object, so inspectors and logs show the table as before.
 */

interface Entry<V> {
  readonly key: string;
  readonly value: V;
  /** Insertion order. */
  readonly seq: number;
}

/** Up to {@link BUCKET} entries whose hashes share the path to them. */
type Bucket<V> = readonly Entry<V>[];

interface Branch<V> {
  readonly slots: readonly (Node<V> | undefined)[];
}

type Node<V> = Bucket<V> | Branch<V>;

const BITS = 5;
const WIDTH = 1 << BITS;
const MASK = WIDTH - 1;
/** Entries a bucket holds before it splits into a branch. */
const BUCKET = 8;
/** 32-bit hashes give 6 full levels of 5 bits; below that, buckets only grow (equal hashes). */
const MAX_DEPTH = 6;

function isBucket<V>(node: Node<V>): node is Bucket<V> {
  return Array.isArray(node);
}

/** FNV-1a over the UTF-16 code units. */
function hashOf(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i += 1) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function slotOf(hash: number, depth: number): number {
  return (hash >>> (depth * BITS)) & MASK;
}

function branchOf<V>(entries: readonly Entry<V>[], depth: number): Branch<V> {
  const groups: Entry<V>[][] = [];
  for (const e of entries) (groups[slotOf(hashOf(e.key), depth)] ??= []).push(e);
  const slots: (Node<V> | undefined)[] = new Array<Node<V> | undefined>(WIDTH).fill(undefined);
  for (let i = 0; i < WIDTH; i += 1) {
    const group = groups[i];
    if (group === undefined) continue;
    slots[i] = group.length > BUCKET && depth + 1 < MAX_DEPTH ? branchOf(group, depth + 1) : group;
  }
  return { slots };
}

/** Work counter: trie nodes visited or copied (tests check that one change touches few). */
export interface TableWork {
  nodes: number;
}

/** An immutable string-keyed table with structural sharing (see the module comment). */
export class PersistentTable<V> {
  /**
   * Trie nodes visited or copied, and entries listed, by every table since start: a work counter
   * for tests (one device's event must not visit every device), not a clock.
   */
  static readonly work: TableWork = { nodes: 0 };

  private ordered: readonly Entry<V>[] | undefined;

  private constructor(
    private readonly root: Node<V> | undefined,
    /** Number of keys. */
    readonly size: number,
    private readonly nextSeq: number,
  ) {}

  /** The empty table. */
  static empty<V>(): PersistentTable<V> {
    return new PersistentTable<V>(undefined, 0, 0);
  }

  /** A table of `entries` (in that order). */
  static from<V>(entries: Iterable<readonly [string, V]>): PersistentTable<V> {
    let table = PersistentTable.empty<V>();
    for (const [key, value] of entries) table = table.set(key, value);
    return table;
  }

  get(key: string): V | undefined {
    const hash = hashOf(key);
    let node = this.root;
    let depth = 0;
    while (node !== undefined) {
      PersistentTable.work.nodes += 1;
      if (isBucket(node)) {
        for (const e of node) if (e.key === key) return e.value;
        return undefined;
      }
      node = node.slots[slotOf(hash, depth)];
      depth += 1;
    }
    return undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }

  /** A table with `key` set to `value` (this one unchanged). */
  set(key: string, value: V): PersistentTable<V> {
    const hash = hashOf(key);
    const added = { yes: false };
    const root = this.insert(this.root, key, value, hash, 0, added);
    return new PersistentTable(root, added.yes ? this.size + 1 : this.size, this.nextSeq + 1);
  }

  /** A table without `key` (this one when it has no such key). */
  delete(key: string): PersistentTable<V> {
    if (!this.has(key)) return this;
    const root = this.remove(this.root, key, hashOf(key), 0);
    return new PersistentTable(root, this.size - 1, this.nextSeq);
  }

  /** Values in insertion order. */
  values(): V[] {
    return this.inOrder().map((e) => e.value);
  }

  /** Keys in insertion order. */
  keys(): string[] {
    return this.inOrder().map((e) => e.key);
  }

  /** Entries in insertion order. */
  entries(): Array<[string, V]> {
    return this.inOrder().map((e) => [e.key, e.value]);
  }

  /** The plain object (insertion order), for JSON, inspectors and logs. */
  toJSON(): Record<string, V> {
    const out: Record<string, V> = {};
    for (const e of this.inOrder()) out[e.key] = e.value;
    return out;
  }

  private inOrder(): readonly Entry<V>[] {
    if (this.ordered !== undefined) return this.ordered;
    const all: Entry<V>[] = [];
    const walk = (node: Node<V> | undefined): void => {
      if (node === undefined) return;
      if (isBucket(node)) all.push(...node);
      else for (const child of node.slots) walk(child);
    };
    walk(this.root);
    PersistentTable.work.nodes += all.length;
    all.sort((a, b) => a.seq - b.seq);
    this.ordered = all;
    return all;
  }

  private insert(
    node: Node<V> | undefined,
    key: string,
    value: V,
    hash: number,
    depth: number,
    added: { yes: boolean },
  ): Node<V> {
    PersistentTable.work.nodes += 1;
    if (node === undefined) {
      added.yes = true;
      return [{ key, value, seq: this.nextSeq }];
    }
    if (isBucket(node)) {
      const at = node.findIndex((e) => e.key === key);
      if (at >= 0) {
        const copy = node.slice();
        copy[at] = { key, value, seq: node[at]?.seq ?? this.nextSeq };
        return copy;
      }
      added.yes = true;
      const grown = [...node, { key, value, seq: this.nextSeq }];
      return grown.length > BUCKET && depth < MAX_DEPTH ? branchOf(grown, depth) : grown;
    }
    const i = slotOf(hash, depth);
    const slots = node.slots.slice();
    slots[i] = this.insert(node.slots[i], key, value, hash, depth + 1, added);
    return { slots };
  }

  private remove(node: Node<V> | undefined, key: string, hash: number, depth: number): Node<V> | undefined {
    PersistentTable.work.nodes += 1;
    if (node === undefined) return undefined;
    if (isBucket(node)) {
      const rest = node.filter((e) => e.key !== key);
      return rest.length === 0 ? undefined : rest;
    }
    const i = slotOf(hash, depth);
    const slots = node.slots.slice();
    slots[i] = this.remove(node.slots[i], key, hash, depth + 1);
    return slots.every((s) => s === undefined) ? undefined : { slots };
  }
}

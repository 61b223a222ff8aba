/**
 * The locks one connection actor holds, by lease id. The machine keeps only the id (serialisable
 * context); the release functions live here, so that stopping the actor from outside — in any
 * state — can still release everything (`releaseAll`).
 */
export class LeaseBook {
  #next = 0;
  readonly #held = new Map<string, () => void>();

  /** Registers a release function; returns its lease id. */
  add(release: () => void): string {
    const id = `lease-${++this.#next}`;
    this.#held.set(id, release);
    return id;
  }

  /** True while `id` is held. */
  holds(id: string): boolean {
    return this.#held.has(id);
  }

  /** Releases one lease (no-op when unknown or already released). */
  release(id: string): void {
    const release = this.#held.get(id);
    this.#held.delete(id);
    release?.();
  }

  /** Releases every lease. */
  releaseAll(): void {
    for (const id of [...this.#held.keys()]) this.release(id);
  }

  /** Number of held leases. */
  get size(): number {
    return this.#held.size;
  }
}

/**
 * A tiny typed event emitter whose `on` returns its own unsubscribe function, so that every
 * listener has an obvious release path (node-ble's leaked listeners are what we avoid here).
 */

/** Map of event name → listener signature. */
export type EventMap = Record<string, (...args: never[]) => void>;

/** Typed emitter; listeners that throw are isolated and reported as process warnings. */
export class TypedEmitter<E extends EventMap> {
  private readonly listeners = new Map<keyof E, Set<E[keyof E]>>();

  /**
   * Adds a listener.
   * @returns a function that removes it (idempotent)
   */
  on<K extends keyof E>(event: K, listener: E[K]): () => void {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
    return () => this.off(event, listener);
  }

  /** Removes a listener. */
  off<K extends keyof E>(event: K, listener: E[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    set.delete(listener);
    if (set.size === 0) this.listeners.delete(event);
  }

  /** Number of listeners of an event (tests use it to prove nothing leaks). */
  listenerCount(event: keyof E): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  /** Total number of listeners over all events. */
  totalListenerCount(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }

  protected emit<K extends keyof E>(event: K, ...args: Parameters<E[K]>): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as (...a: Parameters<E[K]>) => void)(...args);
      } catch (err) {
        // A throwing listener must not break signal dispatch for the others (or reach dbus-next,
        // which would answer the signal with an error reply).
        process.emitWarning(`listener for "${String(event)}" threw: ${String(err)}`, 'BluezListenerWarning');
      }
    }
  }

  protected removeAllListeners(): void {
    this.listeners.clear();
  }
}

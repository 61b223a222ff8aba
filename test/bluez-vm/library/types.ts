/**
 * The library-level suite of the real-BlueZ tier: the library's own entry points
 * (establishConnection, createConnectionActor, createAdapterPool) against bluetoothd 5.66.
 *
 * A scenario is a named async function over a {@link LibraryContext}; scenarios are grouped by
 * concern in `scenarios/<concern>.ts`, each file exporting an array, and registered in
 * `scenarios/index.ts`. See test/bluez-vm/README.md ("Adding a library scenario").
 */
import type { BluezClient, OpenBluezOptions } from '../../../src/index.js';
import type { RealBluezTarget } from '../real-target.js';

/** One library scenario. */
export interface LibraryScenario {
  /** Test name: what the library does on real BlueZ, as a sentence. */
  readonly name: string;
  /** Per-test timeout (default 120 s); the guest runs under software emulation. */
  readonly timeoutMs?: number;
  run(ctx: LibraryContext): Promise<void>;
}

/** What a scenario gets. Everything registered with `defer`/`openBluez` is released after it. */
export interface LibraryContext {
  /** The booted guest (reset before each scenario: fresh bluetoothd, peripheral advertising on hci1). */
  readonly target: RealBluezTarget;
  /** The guest's system bus (`tcp:…`); the library's default auth (ANONYMOUS) opens it. */
  readonly busAddress: string;
  /** The peripheral's address (btvirt's hci1). */
  readonly peripheral: string;
  /** The central adapter (hci0); hci1 is the peripheral's own controller and never sees it. */
  readonly central: 'hci0';
  /** openBluez on the guest's bus; the client is closed after the scenario. */
  openBluez(options?: Omit<OpenBluezOptions, 'busAddress'>): Promise<BluezClient>;
  /** Runs `cleanup` after the scenario (last registered first), whatever its outcome. */
  defer(cleanup: () => unknown): void;
  /** A line in the test output, prefixed with the ms since the scenario started. */
  log(message: string): void;
  /** ms since the scenario started. */
  elapsed(): number;
}

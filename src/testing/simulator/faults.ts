/**
 * The active faults and the questions bluetoothd's code asks about them
 * ("does a fault make this Connect fail?"). Counted faults are used up here.
 */
import type { FaultSpec, FaultTarget } from './types.js';

type Kind = FaultSpec['kind'];
type Of<K extends Kind> = Extract<FaultSpec, { kind: K }>;

/** One injected fault and its remaining uses. */
export interface ActiveFault<K extends Kind = Kind> {
  id: number;
  spec: Of<K>;
  /** Uses left for counted faults; undefined = until cleared. */
  remaining: number | undefined;
  /** Undo whatever the fault did when it was injected (timers, state). */
  onClear: (() => void)[];
}

/** Whether `target` covers the device `address` on `adapter`. */
export function targetsDevice(target: FaultTarget, adapter: string, address: string): boolean {
  if ('daemon' in target) return true;
  if ('device' in target) {
    return (
      target.device.toUpperCase() === address && (target.adapter === undefined || target.adapter === adapter)
    );
  }
  return target.adapter === adapter;
}

/** Whether `target` covers `adapter` (device targets cover the adapter only when they name it). */
export function targetsAdapter(target: FaultTarget, adapter: string): boolean {
  if ('daemon' in target) return true;
  if ('device' in target) return target.adapter === adapter;
  return target.adapter === adapter;
}

function initialUses(spec: FaultSpec): number | undefined {
  switch (spec.kind) {
    case 'fail-connect':
    case 'rf-abort':
      return spec.count;
    case 'hang':
    case 'empty-gatt':
    case 'silent-connected':
      return spec.count;
    case 'link-drop':
      return 1;
    default:
      return undefined;
  }
}

export class FaultBook {
  private nextId = 1;
  private readonly active: ActiveFault[] = [];
  /** Notified when a fault leaves the book (cleared or used up). */
  onRemoved: (f: ActiveFault) => void = () => undefined;

  add(spec: FaultSpec): ActiveFault {
    const f: ActiveFault = { id: this.nextId++, spec, remaining: initialUses(spec), onClear: [] };
    this.active.push(f);
    return f;
  }

  remove<K extends Kind>(f: ActiveFault<K>): void {
    const i = this.active.indexOf(f as unknown as ActiveFault);
    if (i < 0) return;
    this.active.splice(i, 1);
    for (const undo of f.onClear.splice(0)) undo();
    this.onRemoved(f as unknown as ActiveFault);
  }

  isActive<K extends Kind>(f: ActiveFault<K>): boolean {
    return this.active.includes(f as unknown as ActiveFault);
  }

  /** Uses one charge of a counted fault; removes it when used up. */
  use<K extends Kind>(f: ActiveFault<K>): void {
    if (f.remaining === undefined) return;
    f.remaining -= 1;
    if (f.remaining <= 0) this.remove(f);
  }

  all(): readonly ActiveFault[] {
    return this.active;
  }

  /** The first active fault of `kind` covering the device. */
  forDevice<K extends Kind>(kind: K, adapter: string, address: string): ActiveFault<K> | undefined {
    return this.active.find((f) => f.spec.kind === kind && targetsDevice(f.spec.target, adapter, address)) as
      ActiveFault<K> | undefined;
  }

  /** Every active fault of `kind` covering the device. */
  allForDevice<K extends Kind>(kind: K, adapter: string, address: string): ActiveFault<K>[] {
    return this.active.filter(
      (f) => f.spec.kind === kind && targetsDevice(f.spec.target, adapter, address),
    ) as unknown as ActiveFault<K>[];
  }

  forAdapter<K extends Kind>(kind: K, adapter: string): ActiveFault<K> | undefined {
    return this.active.find((f) => f.spec.kind === kind && targetsAdapter(f.spec.target, adapter)) as
      ActiveFault<K> | undefined;
  }

  clearAll(): void {
    for (const f of [...this.active]) this.remove(f);
  }
}

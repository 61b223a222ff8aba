/** Small helpers the library scenarios share. */
import type { BluezClient } from '../../../src/index.js';
import type { LibraryContext } from './types.js';

/** Resolves when `check()` holds, polling every 50 ms; rejects naming `what` after `ms`. */
export async function eventually(what: string, check: () => boolean, ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (!check()) {
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** LE links the kernel holds on `adapter` (btmgmt's connection list; empty when none). */
export async function kernelLinks(ctx: LibraryContext, adapter: string): Promise<string[]> {
  const lines = await ctx.target.guestCommand(`btmgmt -i ${adapter} con`);
  return lines.filter((l) => /^[0-9A-F]{2}(:[0-9A-F]{2}){5}/i.test(l.trim()));
}

/** Whether BlueZ (through the mirror) shows the device connected on any adapter. */
export function connectedAnywhere(bluez: BluezClient, address: string): boolean {
  return bluez.mirror.devices().some((d) => d.address === address && d.connected);
}

/** Whether any adapter is discovering. */
export function discoveringAnywhere(bluez: BluezClient): boolean {
  return bluez.adapters().some((a) => a.discovering);
}

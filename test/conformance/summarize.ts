import type { TraceEvent } from './trace.js';

const WATCHED: Record<string, string[]> = {
  'org.bluez.Device1': ['Connected', 'ServicesResolved', 'Paired'],
  'org.bluez.Adapter1': ['Powered', 'Discovering'],
  'org.bluez.GattCharacteristic1': ['Notifying'],
};

/**
 * The trace as two ordered lists: what bluetoothd signalled, and what the calls returned.
 * They are kept apart because bluetoothd (gdbus) sends property changes from an idle handler
 * while method replies go out at once, so the position of a reply among the signals around it
 * is a race on real BlueZ (both orders were seen on 5.66 for Connect, Disconnect, RemoveDevice
 * and StartDiscovery). Where a reply's position IS fixed, a scenario records it explicitly.
 */
export function split(
  events: readonly TraceEvent[],
  devicePath: string,
): { signals: string[]; calls: string[] } {
  const all = summarize(events, devicePath);
  const isCall = (s: string): boolean => s.includes(' → ');
  return { signals: all.filter((s) => !isCall(s)), calls: all.filter(isCall) };
}

/**
 * The trace reduced to what the library relies on, as short strings in arrival order: call
 * outcomes, the watched properties (Connected, ServicesResolved, Powered, Discovering,
 * Notifying), objects appearing and vanishing, bluetoothd leaving and coming back. GATT object
 * bursts collapse to one "+gatt"/"-gatt" and Value bursts to one "chr.Value", because
 * their counts depend on timing; handles in paths are dropped because they differ per stack.
 */
export function summarize(events: readonly TraceEvent[], devicePath: string): string[] {
  const out: string[] = [];
  const push = (s: string): void => {
    // GATT objects arrive and leave in bursts that a method reply can split; only the first
    // burst's position is behaviour, the split is timing.
    if ((s === '+gatt' || s === '-gatt') && out.includes(s)) return;
    if (s === 'chr.Value' && out[out.length - 1] === s) return;
    out.push(s);
  };
  const label = (path: string): string => {
    if (path === devicePath) return 'dev';
    if (path.startsWith(`${devicePath}/`)) return 'gatt';
    const adapter = /^\/org\/bluez\/(hci\d+)$/.exec(path);
    if (adapter?.[1]) return adapter[1];
    if (/^\/org\/bluez\/hci\d+\/dev_/.test(path)) return 'other-dev';
    return path;
  };
  for (const e of events) {
    switch (e.kind) {
      case 'call': {
        const who = e.client === 'A' ? '' : `${e.client}:`;
        // bluetoothd's own error texts are API too (the library classifies some by text).
        const text = e.result.startsWith('org.bluez.Error.') && e.text !== undefined ? ` "${e.text}"` : '';
        push(`${who}${label(e.path)}.${e.member} → ${e.result}${text}`);
        break;
      }
      case 'props': {
        const where = label(e.path);
        // hci1 is the peripheral's own adapter on real BlueZ: how a target makes the peripheral
        // vanish is not part of what the central observes.
        if (where === 'other-dev' || where === 'hci1') break;
        if (e.iface === 'org.bluez.GattCharacteristic1' && 'Value' in e.changed) push('chr.Value');
        for (const key of (WATCHED[e.iface] ?? []).filter((k) => k in e.changed).sort()) {
          push(`${where === 'gatt' ? 'chr' : where}.${key}=${String(e.changed[key])}`);
        }
        break;
      }
      case 'added':
      case 'removed': {
        const where = label(e.path);
        const sign = e.kind === 'added' ? '+' : '-';
        const names = Array.isArray(e.interfaces) ? e.interfaces : Object.keys(e.interfaces);
        if (where === 'gatt') push(`${sign}gatt`);
        else if (where === 'dev' && names.includes('org.bluez.Device1')) push(`${sign}dev`);
        else if (/^hci\d+$/.test(where) && names.includes('org.bluez.Adapter1')) push(`${sign}${where}`);
        break;
      }
      case 'owner':
        push(e.present ? 'org.bluez appeared' : 'org.bluez vanished');
        break;
    }
  }
  return out;
}

/** The GATT objects under a device as "service <uuid>", "char <uuid> [flags]", "desc <uuid>", sorted. */
export function gattShape(
  objects: Record<string, Record<string, Record<string, unknown>>>,
  devicePath: string,
): string[] {
  const shape: string[] = [];
  for (const [path, ifaces] of Object.entries(objects)) {
    if (!path.startsWith(`${devicePath}/`)) continue;
    const svc = ifaces['org.bluez.GattService1'];
    const chr = ifaces['org.bluez.GattCharacteristic1'];
    const desc = ifaces['org.bluez.GattDescriptor1'];
    if (svc) shape.push(`service ${String(svc['UUID'])}`);
    if (chr) shape.push(`char ${String(chr['UUID'])} [${(chr['Flags'] as string[]).join(',')}]`);
    if (desc) shape.push(`desc ${String(desc['UUID'])}`);
  }
  return shape.sort();
}

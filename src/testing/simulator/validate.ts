/**
 * Checks for everything that enters the simulator from code or from a scenario
 * file, so a typo fails at once with the field named, not as a test that
 * mysteriously never connects.
 */
import type { AdapterSpec, DeviceSpec, FaultSpec, FaultTarget, Scenario, ServiceSpec } from './types.js';
import { BEHAVIOUR_PRESETS } from './context.js';
import type { BluezBehaviour, BluezBehaviourOption } from './context.js';
import { normalizeMac } from './world.js';

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: unknown, field: string): Obj {
  if (!isObj(v)) throw new TypeError(`${field} must be an object (got ${JSON.stringify(v)})`);
  return v;
}

function str(v: unknown, field: string, optional = false): void {
  if (v === undefined && optional) return;
  if (typeof v !== 'string' || v.length === 0) throw new TypeError(`${field} must be a non-empty string`);
}

function num(
  v: unknown,
  field: string,
  opts: { optional?: boolean; min?: number; int?: boolean } = {},
): void {
  if (v === undefined && opts.optional) return;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new TypeError(`${field} must be a finite number (got ${JSON.stringify(v)})`);
  }
  if (opts.int && !Number.isInteger(v)) throw new RangeError(`${field} must be an integer (got ${v})`);
  if (opts.min !== undefined && v < opts.min)
    throw new RangeError(`${field} must be >= ${opts.min} (got ${v})`);
}

function bytes(v: unknown, field: string, optional = true): void {
  if (v === undefined && optional) return;
  if (!Array.isArray(v) || !v.every((b) => Number.isInteger(b) && b >= 0 && b <= 255)) {
    throw new TypeError(`${field} must be an array of bytes (integers 0..255)`);
  }
}

function strings(v: unknown, field: string, optional = true): void {
  if (v === undefined && optional) return;
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) {
    throw new TypeError(`${field} must be an array of strings`);
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function uuid(v: unknown, field: string): void {
  if (typeof v !== 'string' || !UUID.test(v)) {
    throw new TypeError(
      `${field} must be a 128-bit UUID like 0000180f-0000-1000-8000-00805f9b34fb (got ${JSON.stringify(v)})`,
    );
  }
}

const ADAPTER_NAME = /^hci\d+$/;

export function validateAdapterSpec(v: unknown, field = 'adapter'): AdapterSpec {
  const a = obj(v, field);
  if (typeof a.name !== 'string' || !ADAPTER_NAME.test(a.name)) {
    throw new TypeError(`${field}.name must look like hci0 (got ${JSON.stringify(a.name)})`);
  }
  if (a.address !== undefined) normalizeMac(a.address, `${field}.address`);
  str(a.alias, `${field}.alias`, true);
  if (a.powered !== undefined && typeof a.powered !== 'boolean')
    throw new TypeError(`${field}.powered must be a boolean`);
  num(a.slotLimit, `${field}.slotLimit`, { optional: true, min: 1, int: true });
  return a as unknown as AdapterSpec;
}

function validateServices(v: unknown, field: string): void {
  if (!Array.isArray(v)) throw new TypeError(`${field} must be an array`);
  v.forEach((s: unknown, i) => validateService(s, `${field}[${i}]`));
}

function validateService(s: unknown, f: string): void {
  const svc = obj(s, f);
  uuid(svc.uuid, `${f}.uuid`);
  if (svc.primary !== undefined && typeof svc.primary !== 'boolean')
    throw new TypeError(`${f}.primary must be a boolean`);
  if (!Array.isArray(svc.characteristics)) throw new TypeError(`${f}.characteristics must be an array`);
  svc.characteristics.forEach((c: unknown, j) => {
    const cf = `${f}.characteristics[${j}]`;
    const ch = obj(c, cf);
    uuid(ch.uuid, `${cf}.uuid`);
    strings(ch.flags, `${cf}.flags`, false);
    bytes(ch.value, `${cf}.value`);
    num(ch.notifyIntervalMs, `${cf}.notifyIntervalMs`, { optional: true, min: 1 });
    if (ch.descriptors !== undefined) {
      if (!Array.isArray(ch.descriptors)) throw new TypeError(`${cf}.descriptors must be an array`);
      ch.descriptors.forEach((d: unknown, k) => {
        const df = `${cf}.descriptors[${k}]`;
        const desc = obj(d, df);
        uuid(desc.uuid, `${df}.uuid`);
        bytes(desc.value, `${df}.value`);
        strings(desc.flags, `${df}.flags`);
      });
    }
  });
}

/** Validates one GATT service (as BluezSimulator.addService takes it); errors name `field`. */
export function validateServiceSpec(v: unknown, field = 'service'): ServiceSpec {
  validateService(v, field);
  return v as ServiceSpec;
}

function inRange(v: unknown, field: string): void {
  if (v === undefined || typeof v === 'boolean') return;
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string' && ADAPTER_NAME.test(s))) {
    throw new TypeError(`${field} must be true, false or a list of adapter names like ["hci0"]`);
  }
}

export function validateDeviceSpec(v: unknown, field = 'device'): DeviceSpec {
  const d = obj(v, field);
  normalizeMac(d.address, `${field}.address`);
  str(d.name, `${field}.name`, true);
  if (d.addressType !== undefined && d.addressType !== 'public' && d.addressType !== 'random') {
    throw new TypeError(`${field}.addressType must be "public" or "random"`);
  }
  num(d.rssi, `${field}.rssi`, { optional: true, min: -127, int: true });
  if (d.rssiByAdapter !== undefined) {
    for (const [k, r] of Object.entries(obj(d.rssiByAdapter, `${field}.rssiByAdapter`))) {
      num(r, `${field}.rssiByAdapter.${k}`, { min: -127, int: true });
    }
  }
  num(d.txPower, `${field}.txPower`, { optional: true, int: true });
  if (d.manufacturerData !== undefined) {
    for (const [k, b] of Object.entries(obj(d.manufacturerData, `${field}.manufacturerData`))) {
      const id = Number(k);
      if (!Number.isInteger(id) || id < 0 || id > 0xffff) {
        throw new RangeError(`${field}.manufacturerData keys must be company ids 0..65535 (got ${k})`);
      }
      bytes(b, `${field}.manufacturerData.${k}`, false);
    }
  }
  if (d.serviceData !== undefined) {
    for (const [k, b] of Object.entries(obj(d.serviceData, `${field}.serviceData`))) {
      uuid(k, `${field}.serviceData key`);
      bytes(b, `${field}.serviceData.${k}`, false);
    }
  }
  if (d.uuids !== undefined) {
    strings(d.uuids, `${field}.uuids`);
    (d.uuids as string[]).forEach((u, i) => uuid(u, `${field}.uuids[${i}]`));
  }
  if (d.services !== undefined) validateServices(d.services, `${field}.services`);
  inRange(d.inRange, `${field}.inRange`);
  if (d.knownOn !== undefined) inRange(d.knownOn, `${field}.knownOn`);
  if (d.paired !== undefined && typeof d.paired !== 'boolean')
    throw new TypeError(`${field}.paired must be a boolean`);
  return d as unknown as DeviceSpec;
}

/** How a fault may be targeted. */
const FAULT_SCOPE: Record<FaultSpec['kind'], 'device' | 'adapter' | 'any'> = {
  'connect-latency': 'any',
  'fail-connect': 'any',
  'link-drop': 'any',
  disappear: 'any',
  hang: 'any',
  phantom: 'any',
  'stale-in-progress': 'any',
  'empty-gatt': 'any',
  'late-gatt': 'any',
  'rf-abort': 'any',
  zombie: 'any',
  'slot-limit': 'adapter',
  'power-off': 'adapter',
  'remove-adapter': 'adapter',
  'external-scanner': 'adapter',
  'restart-daemon': 'any',
  'bus-stall': 'any',
  'service-changed': 'device',
  'silent-connected': 'any',
};

function validateTarget(v: unknown, field: string, scope: 'device' | 'adapter' | 'any'): FaultTarget {
  const t = obj(v, field);
  if ('daemon' in t) {
    if (scope === 'device')
      throw new TypeError(`${field} must name a device ({ device: "AA:BB:CC:DD:EE:FF" })`);
    if (t.daemon !== true) throw new TypeError(`${field}.daemon must be true`);
    return t as unknown as FaultTarget;
  }
  if ('device' in t) {
    if (scope === 'adapter')
      throw new TypeError(`${field} must name an adapter ({ adapter: "hci0" }) or { daemon: true }`);
    normalizeMac(t.device, `${field}.device`);
    if (t.adapter !== undefined && (typeof t.adapter !== 'string' || !ADAPTER_NAME.test(t.adapter))) {
      throw new TypeError(`${field}.adapter must look like hci0`);
    }
    return t as unknown as FaultTarget;
  }
  if (scope === 'device')
    throw new TypeError(`${field} must name a device ({ device: "AA:BB:CC:DD:EE:FF" })`);
  if (typeof t.adapter === 'string' && ADAPTER_NAME.test(t.adapter)) return t as unknown as FaultTarget;
  throw new TypeError(
    `${field} must be { device: "AA:BB:…", adapter?: "hciN" }, { adapter: "hciN" } or { daemon: true }`,
  );
}

export function validateFault(v: unknown, field = 'fault'): FaultSpec {
  const f = obj(v, field);
  const kind = f.kind as FaultSpec['kind'];
  const scope = FAULT_SCOPE[kind];
  if (typeof kind !== 'string' || scope === undefined) {
    throw new TypeError(
      `${field}.kind must be one of ${Object.keys(FAULT_SCOPE).join(', ')} (got ${JSON.stringify(f.kind)})`,
    );
  }
  validateTarget(f.target, `${field}.target`, scope);
  const ms = (k: string, optional = false) => num(f[k], `${field}.${k}`, { optional, min: 0 });
  const count = (optional = false) => num(f.count, `${field}.count`, { optional, min: 1, int: true });
  switch (kind) {
    case 'connect-latency':
    case 'late-gatt':
    case 'bus-stall':
      ms('ms');
      break;
    case 'fail-connect':
      count();
      str(f.errorName, `${field}.errorName`);
      if (typeof f.message !== 'string') throw new TypeError(`${field}.message must be a string`);
      break;
    case 'link-drop':
      ms('afterMs', true);
      break;
    case 'disappear':
    case 'remove-adapter':
      ms('forMs', true);
      break;
    case 'service-changed':
      ms('afterMs', true);
      validateService(f.service, `${field}.service`);
      break;
    case 'restart-daemon':
      ms('downMs', true);
      if (f.crash !== undefined && typeof f.crash !== 'boolean')
        throw new TypeError(`${field}.crash must be a boolean`);
      break;
    case 'hang':
      str(f.interface, `${field}.interface`);
      str(f.member, `${field}.member`);
      count(true);
      break;
    case 'empty-gatt':
    case 'silent-connected':
      count(true);
      break;
    case 'rf-abort':
      count();
      ms('linkUpMs', true);
      break;
    case 'slot-limit':
      num(f.slots, `${field}.slots`, { min: 0, int: true });
      break;
    default:
      break;
  }
  return f as unknown as FaultSpec;
}

const BEHAVIOUR_CHOICES: Record<keyof BluezBehaviour, readonly unknown[]> = {
  gattCache: ['no', 'yes', 'always'],
  legacyPendingConnectError: [true, false],
  unpoweredConnectError: ['not-ready', 'io-error'],
  temporaryDevicesOnPowerOff: ['remove', 'keep-connectable'],
};

const choices = (list: readonly unknown[]) => list.map((c) => JSON.stringify(c)).join(', ');

/** Validates a behaviour option: a preset name, or known switches with allowed values (and an optional preset). */
export function validateBehaviour(v: unknown, field = 'behaviour'): BluezBehaviourOption {
  const presets = Object.keys(BEHAVIOUR_PRESETS);
  if (typeof v === 'string') {
    if (!presets.includes(v)) throw new TypeError(`${field} must be one of ${choices(presets)} or an object`);
    return v as BluezBehaviourOption;
  }
  const b = obj(v, field);
  for (const [key, value] of Object.entries(b)) {
    if (value === undefined) continue;
    if (key === 'preset') {
      if (!presets.includes(value as string))
        throw new TypeError(`${field}.preset must be one of ${choices(presets)}`);
      continue;
    }
    const allowed = BEHAVIOUR_CHOICES[key as keyof BluezBehaviour] as readonly unknown[] | undefined;
    if (allowed === undefined) {
      throw new TypeError(
        `${field}.${key} is not a behaviour switch (known: preset, ${Object.keys(BEHAVIOUR_CHOICES).join(', ')})`,
      );
    }
    if (!allowed.includes(value)) throw new TypeError(`${field}.${key} must be one of ${choices(allowed)}`);
  }
  return b;
}

/** Validates a whole scenario (e.g. parsed JSON); errors name the offending field path. */
export function validateScenario(v: unknown, field = 'scenario'): Scenario {
  const s = obj(v, field);
  num(s.latencyScale, `${field}.latencyScale`, { optional: true, min: 0 });
  if (s.timing !== undefined) {
    for (const [k, t] of Object.entries(obj(s.timing, `${field}.timing`))) {
      num(t, `${field}.timing.${k}`, { min: 0 });
    }
  }
  if (s.behaviour !== undefined) validateBehaviour(s.behaviour, `${field}.behaviour`);
  if (!Array.isArray(s.adapters)) throw new TypeError(`${field}.adapters must be an array of adapters`);
  const names = new Set<string>();
  s.adapters.forEach((a, i) => {
    const spec = validateAdapterSpec(a, `${field}.adapters[${i}]`);
    if (names.has(spec.name)) throw new RangeError(`${field}.adapters[${i}].name ${spec.name} is used twice`);
    names.add(spec.name);
  });
  if (s.devices !== undefined) {
    if (!Array.isArray(s.devices)) throw new TypeError(`${field}.devices must be an array`);
    s.devices.forEach((d, i) => validateDeviceSpec(d, `${field}.devices[${i}]`));
  }
  if (s.faults !== undefined) {
    if (!Array.isArray(s.faults)) throw new TypeError(`${field}.faults must be an array`);
    s.faults.forEach((f, i) => validateFault(f, `${field}.faults[${i}]`));
  }
  return s as unknown as Scenario;
}

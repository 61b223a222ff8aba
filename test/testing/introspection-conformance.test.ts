import { readFileSync } from 'node:fs';
import type dbus from 'dbus-next';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulatedBluez } from '../../src/testing/index.js';
import type { SimulatedBluez } from '../../src/testing/index.js';
import { bms, eventually } from './fixtures.js';
import { DEV, RawClient } from './helpers/raw-client.js';

interface DocInterface {
  doc: string;
  methods: Record<string, { in: string; out: string; optional?: boolean }>;
  properties: Record<string, { type: string; access: 'read' | 'readwrite'; optional?: boolean }>;
  signals: Record<string, string>;
  notExported?: Record<string, string>;
}
const api = JSON.parse(readFileSync(new URL('../fixtures/bluez-api.json', import.meta.url), 'utf8')) as {
  interfaces: Record<string, DocInterface>;
};

interface Introspected {
  methods: Map<string, { in: string; out: string }>;
  properties: Map<string, { type: string; access: string }>;
  signals: Map<string, string>;
}

/** A small parser for introspection XML: interfaces, members, argument types, child nodes. */
function parseIntrospection(xml: string): { interfaces: Map<string, Introspected>; nodes: string[] } {
  const interfaces = new Map<string, Introspected>();
  const nodes: string[] = [];
  let iface: Introspected | undefined;
  let member: { kind: 'method' | 'signal'; name: string; in: string; out: string } | undefined;
  const depth: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([A-Za-z]+)([^>]*?)(\/?)>/g)) {
    const [, closing, tag, rawAttrs, selfClosing] = m as unknown as [string, string, string, string, string];
    const attrs = Object.fromEntries([...rawAttrs.matchAll(/([\w:]+)="([^"]*)"/g)].map((a) => [a[1], a[2]]));
    if (closing) {
      if (tag === 'interface') iface = undefined;
      if ((tag === 'method' || tag === 'signal') && member && iface) {
        if (member.kind === 'method') iface.methods.set(member.name, { in: member.in, out: member.out });
        else iface.signals.set(member.name, member.out);
        member = undefined;
      }
      depth.pop();
      continue;
    }
    if (tag === 'node' && depth.length === 1 && attrs.name) nodes.push(attrs.name);
    if (tag === 'interface') {
      iface = { methods: new Map(), properties: new Map(), signals: new Map() };
      interfaces.set(attrs.name ?? '', iface);
    } else if (tag === 'property' && iface) {
      iface.properties.set(attrs.name ?? '', { type: attrs.type ?? '', access: attrs.access ?? '' });
    } else if ((tag === 'method' || tag === 'signal') && iface) {
      member = { kind: tag, name: attrs.name ?? '', in: '', out: '' };
      if (selfClosing) {
        if (tag === 'method') iface.methods.set(member.name, { in: '', out: '' });
        else iface.signals.set(member.name, '');
        member = undefined;
      }
    } else if (tag === 'arg' && member) {
      if (member.kind === 'signal' || attrs.direction === 'out') member.out += attrs.type ?? '';
      else member.in += attrs.type ?? '';
    }
    if (!selfClosing) depth.push(tag);
  }
  return { interfaces, nodes };
}

describe('introspection conformance with the documented BlueZ API (test/fixtures/bluez-api.json)', () => {
  let env: SimulatedBluez;
  let client: RawClient;
  const byPath = new Map<string, ReturnType<typeof parseIntrospection>>();
  const dev = DEV('hci0', 'AA:BB:CC:DD:EE:01');

  beforeAll(async () => {
    env = await startSimulatedBluez({
      scenario: { adapters: [{ name: 'hci0' }, { name: 'hci1' }], devices: [bms('AA:BB:CC:DD:EE:01')] },
      latencyScale: 0.01,
    });
    client = await RawClient.connect(env.address);
    await client.call('/org/bluez/hci0', 'org.bluez.Adapter1', 'StartDiscovery');
    await eventually('discovered', () => env.sim.state().adapters[0]?.devices.length === 1);
    await client.call(dev, 'org.bluez.Device1', 'Connect');
    await eventually('resolved', () => env.sim.state().adapters[0]?.devices[0]?.servicesResolved === true);
    const paths = [
      '/',
      '/org',
      '/org/bluez',
      '/org/bluez/hci0',
      dev,
      `${dev}/service0010`,
      `${dev}/service0010/char0011`,
    ];
    paths.push(`${dev}/service0010/char0011/desc0013`);
    for (const p of paths) {
      const r = await client.call(p, 'org.freedesktop.DBus.Introspectable', 'Introspect');
      expect(r.ok).toBe(true);
      byPath.set(p, parseIntrospection(String(r.body[0])));
    }
  });
  afterAll(async () => {
    client?.close();
    await env?.stop();
  });

  it('lists child nodes so clients that walk introspection (node-ble) find adapters, devices and GATT objects', () => {
    expect(byPath.get('/')?.nodes).toEqual(['org']);
    expect(byPath.get('/org')?.nodes).toEqual(['bluez']);
    expect(byPath.get('/org/bluez')?.nodes.sort()).toEqual(['hci0', 'hci1']);
    expect(byPath.get('/org/bluez/hci0')?.nodes).toEqual(['dev_AA_BB_CC_DD_EE_01']);
    expect(byPath.get(dev)?.nodes).toEqual(['service0010', 'service0020']);
    expect(byPath.get(`${dev}/service0010/char0011`)?.nodes).toEqual(['desc0013']);
  });

  for (const [name, doc] of Object.entries(api.interfaces)) {
    it(`${name} matches ${doc.doc}`, () => {
      const found = [...byPath.values()].map((p) => p.interfaces.get(name)).find((i) => i !== undefined);
      expect(found, `${name} is exported somewhere`).toBeDefined();
      const iface = found as Introspected;
      const absent = new Set(Object.keys(doc.notExported ?? {}));
      for (const [m, sig] of Object.entries(doc.methods)) {
        if (absent.has(m)) {
          expect(iface.methods.has(m), `${name}.${m} is documented as not exported`).toBe(false);
          continue;
        }
        expect(iface.methods.get(m), `${name}.${m}(${sig.in}) → ${sig.out}`).toEqual({
          in: sig.in,
          out: sig.out,
        });
      }
      for (const [p, prop] of Object.entries(doc.properties)) {
        if (absent.has(p)) {
          expect(iface.properties.has(p), `${name}.${p} is documented as not exported`).toBe(false);
          continue;
        }
        expect(iface.properties.get(p), `${name}.${p}`).toEqual({ type: prop.type, access: prop.access });
      }
      for (const [s, sig] of Object.entries(doc.signals)) {
        expect(iface.signals.get(s), `signal ${name}.${s}`).toBe(sig);
      }
      // Nothing invented: every member the simulator shows is documented.
      expect([...iface.methods.keys()].filter((m) => !(m in doc.methods))).toEqual([]);
      expect([...iface.properties.keys()].filter((p) => !(p in doc.properties))).toEqual([]);
      expect([...iface.signals.keys()].filter((s) => !(s in doc.signals))).toEqual([]);
    });
  }

  it('every property value on the wire carries the documented D-Bus type', async () => {
    const r = await client.call('/', 'org.freedesktop.DBus.ObjectManager', 'GetManagedObjects');
    const objects = r.body[0] as Record<string, Record<string, Record<string, dbus.Variant>>>;
    let checked = 0;
    for (const ifaces of Object.values(objects)) {
      for (const [name, props] of Object.entries(ifaces)) {
        const doc = api.interfaces[name];
        if (!doc) continue;
        for (const [prop, variant] of Object.entries(props)) {
          expect(variant.signature, `${name}.${prop}`).toBe(doc.properties[prop]?.type);
          checked += 1;
        }
      }
    }
    expect(checked).toBeGreaterThan(40);
  });

  it('every org.bluez object has the Properties interface with PropertiesChanged declared', () => {
    for (const [path, parsed] of byPath) {
      if (!path.startsWith('/org/bluez')) continue;
      expect(
        parsed.interfaces.get('org.freedesktop.DBus.Properties')?.signals.get('PropertiesChanged'),
        path,
      ).toBe('sa{sv}as');
    }
  });
});

/**
 * One lifetime of the simulated bluetoothd: a bus connection owning org.bluez,
 * /org/bluez with AgentManager1, and the adapters that are plugged in. A
 * restart ends the lifetime (the connection closes, so callers get NoReply and
 * NameOwnerChanged fires) and a new one starts with a fresh object tree.
 */
import type { BluezBehaviour, DaemonContext, GattWrite } from './context.js';
import { createInterface } from './exported.js';
import { AGENT_MANAGER1, BluezErrors, BluezTexts } from './bluez-interfaces.js';
import { SimAdapter } from './adapter.js';
import type { FaultBook } from './faults.js';
import { targetsDevice } from './faults.js';
import { SimBus, dbusError } from './sim-bus.js';
import type { RawMessage } from './sim-bus.js';
import type { FullTiming } from './timing.js';
import { Timers } from './timing.js';
import type { SimCall } from './types.js';
import type { Controller, World } from './world.js';

export interface DaemonDeps {
  busAddress: string;
  world: World;
  faults: FaultBook;
  timing: FullTiming;
  behaviour: BluezBehaviour;
  calls: SimCall[];
  now: () => number;
  recordWrite: (w: GattWrite) => void;
}

export class Bluetoothd {
  readonly ctx: DaemonContext;
  readonly adapters = new Map<string, SimAdapter>();
  private readonly agents = new Map<string, string>();

  private constructor(private readonly deps: DaemonDeps) {
    const bus = new SimBus(deps.busAddress, deps.calls, deps.now);
    this.ctx = {
      bus,
      timers: new Timers(),
      timing: deps.timing,
      world: deps.world,
      faults: deps.faults,
      behaviour: deps.behaviour,
      now: deps.now,
      recordWrite: deps.recordWrite,
    };
    bus.onClientGone = (name) => {
      for (const a of this.adapters.values()) a.clientGone(name);
      for (const [path, owner] of this.agents) if (owner === name) this.agents.delete(path);
    };
    bus.hangRule = (m) => this.hangs(m);
  }

  /** Connects, exports /org/bluez, takes the name, then announces the adapters. */
  static async start(deps: DaemonDeps): Promise<Bluetoothd> {
    const d = new Bluetoothd(deps);
    const agentManager = createInterface(AGENT_MANAGER1, {
      get: () => undefined,
      call: (member, args) => d.agentCall(member, args),
    });
    d.ctx.bus.add({ path: '/org/bluez', interfaces: [agentManager] }, true);
    try {
      await d.ctx.bus.start();
    } catch (e) {
      d.stop();
      throw e;
    }
    for (const c of deps.world.controllers.values()) {
      if (c.poweredOffByExit) {
        // AutoEnable: the new bluetoothd powers on what the previous one powered off on exit.
        c.poweredOffByExit = false;
        c.powered = true;
      }
      if (c.present) d.plug(c);
    }
    return d;
  }

  /** A controller appears (boot or USB plug). */
  plug(c: Controller): SimAdapter {
    const existing = this.adapters.get(c.spec.name);
    if (existing) return existing;
    const a = new SimAdapter(this.ctx, c);
    this.adapters.set(c.spec.name, a);
    a.export();
    return a;
  }

  /** A controller disappears (USB unplug): InterfacesRemoved for its devices and itself. */
  unplug(name: string): void {
    const a = this.adapters.get(name);
    if (!a) return;
    this.adapters.delete(name);
    a.destroy(false);
  }

  private agentCall(member: string, args: unknown[]): void {
    const sender = this.ctx.bus.currentSender;
    const path = String(args[0]);
    switch (member) {
      case 'RegisterAgent':
        if (this.agents.has(path)) throw dbusError(BluezErrors.AlreadyExists, 'Already Exists');
        this.agents.set(path, sender);
        return;
      case 'UnregisterAgent':
      case 'RequestDefaultAgent':
        if (this.agents.get(path) !== sender) throw dbusError(BluezErrors.DoesNotExist, 'No such Agent');
        if (member === 'UnregisterAgent') this.agents.delete(path);
        return;
      default:
        throw dbusError(BluezErrors.NotSupported, BluezTexts.notSupported);
    }
  }

  /** The `hang` fault: a matching call is swallowed (count limits how many). */
  private hangs(m: RawMessage): boolean {
    for (const f of this.ctx.faults.all()) {
      if (f.spec.kind !== 'hang') continue;
      if (f.spec.interface !== m.interface || f.spec.member !== m.member) continue;
      if (!this.pathMatches(f.spec.target, m.path ?? '')) continue;
      this.ctx.faults.use(f);
      return true;
    }
    return false;
  }

  private pathMatches(target: Parameters<typeof targetsDevice>[0], path: string): boolean {
    if ('daemon' in target) return true;
    for (const a of this.adapters.values()) {
      if ('device' in target) {
        for (const d of a.devices.values()) {
          if (targetsDevice(target, a.name, d.address) && (path === d.path || path.startsWith(`${d.path}/`)))
            return true;
        }
      } else if (target.adapter === a.name && (path === a.path || path.startsWith(`${a.path}/`))) {
        return true;
      }
    }
    return false;
  }

  /**
   * bluetoothd exits cleanly (SIGTERM, systemctl restart), as 5.66 does it: pending calls are no
   * longer answered (their callers get NoReply when the name goes), every powered adapter drops
   * its temporary devices and is powered off (adapter_shutdown: Connected=false,
   * ServicesResolved=false, then Powered=false with Discovering=false), then every adapter and
   * its devices are removed with InterfacesRemoved (GATT objects, devices, the adapter), and only
   * then the connection closes and org.bluez vanishes.
   */
  shutDown(): void {
    this.ctx.bus.stopAnswering();
    this.ctx.timers.clearAll();
    for (const a of this.adapters.values()) a.shutDown();
    for (const a of this.adapters.values()) a.destroy(false);
    this.adapters.clear();
    this.stop();
  }

  /** Ends this lifetime: timers stop, the connection closes, objects vanish without signals. */
  stop(): void {
    this.ctx.timers.clearAll();
    this.ctx.bus.close();
    for (const a of this.adapters.values()) a.destroy(true);
    this.adapters.clear();
  }
}

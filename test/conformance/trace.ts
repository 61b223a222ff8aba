import { Message, MessageType } from 'dbus-next';
import type { MessageBus } from 'dbus-next';
import { callOutcome, plain } from './bus.js';
import type { CallOutcome } from './bus.js';

/** One thing a client saw on the bus, in arrival order. */
export type TraceEvent =
  | {
      kind: 'call';
      path: string;
      iface: string;
      member: string;
      result: string;
      text?: string;
      client: string;
    }
  | { kind: 'props'; path: string; iface: string; changed: Record<string, unknown>; invalidated: string[] }
  | { kind: 'added'; path: string; interfaces: Record<string, Record<string, unknown>> }
  | { kind: 'removed'; path: string; interfaces: string[] }
  | { kind: 'owner'; present: boolean };

const MATCH_RULES = [
  "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'",
  "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.ObjectManager'",
  "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.bluez'",
];

async function busCall(bus: MessageBus, member: string, arg: string): Promise<void> {
  await bus.call(
    new Message({
      type: MessageType.METHOD_CALL,
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member,
      signature: 's',
      body: [arg],
    }),
  );
}

/**
 * Records org.bluez signals and the outcomes of the calls made through it, in the order this
 * client received them. Uses explicit AddMatch rules (dbus-next proxies only deliver signals
 * that the remote introspection declares, and leak match rules) and removes them on stop().
 */
export class TraceRecorder {
  readonly events: TraceEvent[] = [];
  private readonly waiters = new Set<() => void>();
  private readonly onMessage = (msg: Message): void => this.record(msg);

  private constructor(readonly bus: MessageBus) {}

  static async start(bus: MessageBus): Promise<TraceRecorder> {
    const recorder = new TraceRecorder(bus);
    bus.on('message', recorder.onMessage);
    for (const rule of MATCH_RULES) await busCall(bus, 'AddMatch', rule);
    return recorder;
  }

  async stop(): Promise<void> {
    this.bus.removeListener('message', this.onMessage);
    for (const rule of MATCH_RULES) await busCall(this.bus, 'RemoveMatch', rule).catch(() => {});
  }

  /** Index to slice the trace from ("what happened after this point"). */
  mark(): number {
    return this.events.length;
  }

  /** Makes a call on `bus` (default: the recorder's) and records its outcome in the trace. */
  async call(
    path: string,
    iface: string,
    member: string,
    signature = '',
    body: unknown[] = [],
    opts: { bus?: MessageBus; client?: string; timeoutMs?: number } = {},
  ): Promise<CallOutcome> {
    const outcome = await callOutcome(
      opts.bus ?? this.bus,
      path,
      iface,
      member,
      signature,
      body,
      opts.timeoutMs,
    );
    this.push({
      kind: 'call',
      path,
      iface,
      member,
      result: outcome.ok ? 'ok' : outcome.error,
      ...(outcome.ok ? {} : { text: outcome.text }),
      client: opts.client ?? 'A',
    });
    return outcome;
  }

  /** Resolves with the first event from `from` on that matches, or rejects after `timeoutMs`. */
  waitFor(match: (e: TraceEvent) => boolean, timeoutMs: number, what: string, from = 0): Promise<TraceEvent> {
    return new Promise((resolve, reject) => {
      let index = from;
      const check = (): void => {
        for (; index < this.events.length; index++) {
          const event = this.events[index];
          if (event && match(event)) {
            done();
            resolve(event);
            return;
          }
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
      };
      this.waiters.add(check);
      check();
    });
  }

  private push(event: TraceEvent): void {
    this.events.push(event);
    for (const waiter of [...this.waiters]) waiter();
  }

  private record(msg: Message): void {
    if (msg.type !== MessageType.SIGNAL) return;
    const body = msg.body;
    if (msg.interface === 'org.freedesktop.DBus.Properties' && msg.member === 'PropertiesChanged') {
      if (!msg.path.startsWith('/org/bluez')) return;
      this.push({
        kind: 'props',
        path: msg.path,
        iface: String(body[0]),
        changed: plain(body[1]) as Record<string, unknown>,
        invalidated: (body[2] as string[] | undefined) ?? [],
      });
    } else if (msg.interface === 'org.freedesktop.DBus.ObjectManager' && msg.member === 'InterfacesAdded') {
      this.push({
        kind: 'added',
        path: String(body[0]),
        interfaces: plain(body[1]) as Record<string, Record<string, unknown>>,
      });
    } else if (msg.interface === 'org.freedesktop.DBus.ObjectManager' && msg.member === 'InterfacesRemoved') {
      this.push({ kind: 'removed', path: String(body[0]), interfaces: body[1] as string[] });
    } else if (msg.member === 'NameOwnerChanged' && body[0] === 'org.bluez') {
      this.push({ kind: 'owner', present: body[2] !== '' });
    }
  }
}

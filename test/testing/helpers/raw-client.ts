/**
 * A plain dbus-next client for simulator tests: calls with a deadline (dbus-next
 * has none) and a log of org.bluez signals and call outcomes in wire order, so
 * tests can assert "Connected, then the reply, then ServicesResolved".
 */
import dbus from 'dbus-next';

export interface LogEntry {
  kind: 'signal' | 'reply' | 'error';
  path: string;
  member: string;
  /** For PropertiesChanged: interface + changed names=values; for replies: the call's member. */
  detail: string;
  body: unknown[];
}

export interface CallOutcome {
  ok: boolean;
  errorName?: string;
  text?: string;
  body: unknown[];
}

export class NoReplyWithin extends Error {
  constructor(member: string, ms: number) {
    super(`${member}: no reply within ${ms} ms`);
    this.name = 'NoReplyWithin';
  }
}

interface RawMsg {
  type: number;
  replySerial?: number;
  errorName?: string;
  path: string;
  interface: string;
  member: string;
  sender: string;
  body: unknown[];
}

function describe(body: unknown[]): string {
  const [iface, changed, invalidated] = body as [string, Record<string, dbus.Variant>, string[]];
  const parts = Object.entries(changed ?? {}).map(([k, v]) => `${k}=${JSON.stringify(v.value)}`);
  for (const k of invalidated ?? []) parts.push(`${k}=<invalidated>`);
  return `${iface.replace('org.bluez.', '')} ${parts.join(' ')}`;
}

export class RawClient {
  readonly bus: dbus.MessageBus;
  readonly log: LogEntry[] = [];
  private closed = false;
  /** Our calls awaiting a reply, by serial: the reply is logged where it arrives on the wire. */
  private readonly awaiting = new Map<number, { path: string; member: string }>();

  private constructor(address: string) {
    this.bus = dbus.sessionBus({ busAddress: address });
    this.bus.on('error', () => undefined);
    this.bus.on('message', (m: dbus.Message) => {
      const msg = m as unknown as RawMsg;
      // A reply is logged here, in wire order: dbus-next resolves the call's promise in this same
      // turn, but code awaiting it runs only after every message that came in the same read (the
      // signals that followed the reply on the wire would otherwise be logged before it).
      if ((msg.type === 2 || msg.type === 3) && msg.replySerial !== undefined) {
        const call = this.awaiting.get(msg.replySerial);
        if (call === undefined) return;
        this.awaiting.delete(msg.replySerial);
        this.log.push({
          kind: msg.type === 2 ? 'reply' : 'error',
          path: call.path,
          member: call.member,
          detail: msg.type === 2 ? '' : (msg.errorName ?? ''),
          body: msg.type === 2 ? msg.body : [],
        });
        return;
      }
      if (msg.type !== 4 || msg.interface === 'org.freedesktop.DBus') return;
      const detail =
        msg.member === 'PropertiesChanged'
          ? describe(msg.body)
          : msg.member === 'InterfacesAdded' || msg.member === 'InterfacesRemoved'
            ? String(msg.body[0])
            : '';
      this.log.push({ kind: 'signal', path: msg.path, member: msg.member, detail, body: msg.body });
    });
  }

  static async connect(address: string): Promise<RawClient> {
    const c = new RawClient(address);
    await c.call(
      '/org/freedesktop/DBus',
      'org.freedesktop.DBus',
      'AddMatch',
      's',
      ["type='signal',sender='org.bluez'"],
      {
        destination: 'org.freedesktop.DBus',
      },
    );
    return c;
  }

  get name(): string {
    return (this.bus as unknown as { name: string }).name;
  }

  /** Calls a method; rejects with NoReplyWithin after `timeoutMs`. D-Bus errors resolve as { ok: false }. */
  async call(
    path: string,
    iface: string,
    member: string,
    signature = '',
    body: unknown[] = [],
    opts: { timeoutMs?: number; destination?: string } = {},
  ): Promise<CallOutcome> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    const msg = new dbus.Message({
      destination: opts.destination ?? 'org.bluez',
      path,
      interface: iface,
      member,
      signature,
      body,
    });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new NoReplyWithin(member, timeoutMs)), timeoutMs);
    });
    const replied = this.bus.call(msg);
    // dbus-next numbers the message when it sends it, synchronously inside call().
    const serial = (msg as unknown as { serial: number | null }).serial;
    if (serial !== null) this.awaiting.set(serial, { path, member });
    try {
      const reply = await Promise.race([replied, deadline]);
      return { ok: true, body: reply?.body ?? [] };
    } catch (e) {
      if (e instanceof dbus.DBusError) return { ok: false, errorName: e.type, text: e.text, body: [] };
      throw e;
    } finally {
      clearTimeout(timer);
      if (serial !== null) this.awaiting.delete(serial);
    }
  }

  get(path: string, iface: string, prop: string): Promise<CallOutcome> {
    return this.call(path, 'org.freedesktop.DBus.Properties', 'Get', 'ss', [iface, prop]);
  }

  async value(path: string, iface: string, prop: string): Promise<unknown> {
    const r = await this.get(path, iface, prop);
    if (!r.ok) throw new Error(`Get ${prop}: ${r.errorName} ${r.text}`);
    return (r.body[0] as dbus.Variant).value;
  }

  set(path: string, iface: string, prop: string, signature: string, value: unknown): Promise<CallOutcome> {
    return this.call(path, 'org.freedesktop.DBus.Properties', 'Set', 'ssv', [
      iface,
      prop,
      new dbus.Variant(signature, value),
    ]);
  }

  async managedPaths(): Promise<string[]> {
    const r = await this.call('/', 'org.freedesktop.DBus.ObjectManager', 'GetManagedObjects');
    return Object.keys(r.body[0] as Record<string, unknown>).sort();
  }

  /** Log lines like "signal Device1 Connected=true" for order assertions. */
  lines(filter: (e: LogEntry) => boolean = () => true): string[] {
    return this.log
      .filter(filter)
      .map((e) =>
        `${e.kind} ${e.member === 'PropertiesChanged' ? e.detail : `${e.member} ${e.detail}`}`.trim(),
      );
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.bus.disconnect();
  }
}

export const DEV = (adapter: string, mac: string) => `/org/bluez/${adapter}/dev_${mac.replace(/:/g, '_')}`;

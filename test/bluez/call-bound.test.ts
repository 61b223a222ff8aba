/**
 * The bound on calls awaiting a reply per D-Bus connection (src/bluez/call-gate.ts), against a real
 * private dbus-daemon and a service that holds its replies until told to answer.
 */
import dbus from 'dbus-next';
import type { Message } from 'dbus-next';
import { afterEach, describe, expect, it } from 'vitest';
import { acquireBus, type MethodCall, type SharedBus } from '../../src/bluez/bus.js';
import { openBluez } from '../../src/bluez/client.js';
import {
  BusLimitsExceededError,
  BusLostError,
  DBusTimeoutError,
  classifyError,
  toBluezError,
} from '../../src/bluez/errors.js';
import { countsTowardEscalation, decideEscalation, emptyLedger } from '../../src/machines/escalation.js';
import { startPrivateBus, type PrivateBus } from '../../src/testing/index.js';
import { rawConnection, sleep } from './helpers.js';

const NAME = 'org.example.Held';

/** A service whose `Hold` calls wait until released; it records arrival order and the peak held. */
interface HeldService {
  /** Object paths of the Hold calls received, in arrival order. */
  readonly arrivals: string[];
  readonly held: number;
  readonly peak: number;
  /** Answers the oldest `n` held calls (all when omitted). */
  release(n?: number): void;
  /** Answer every call after `ms` from now on. */
  autoReply(ms: number): void;
  close(): void;
}

async function startHeldService(address: string): Promise<HeldService> {
  const bus = await rawConnection(address);
  const waiting: Message[] = [];
  const arrivals: string[] = [];
  let peak = 0;
  let autoMs: number | undefined;
  const answer = (msg: Message): void => {
    bus.send(dbus.Message.newMethodReturn(msg, 's', [msg.path]));
  };
  const release = (n = waiting.length): void => {
    for (const msg of waiting.splice(0, n)) answer(msg);
  };
  bus.addMethodHandler((msg: Message) => {
    if (msg.interface !== NAME || msg.member !== 'Hold') return false;
    arrivals.push(msg.path);
    if (autoMs !== undefined) {
      setTimeout(() => answer(msg), autoMs);
      return true;
    }
    waiting.push(msg);
    peak = Math.max(peak, waiting.length);
    return true;
  });
  await bus.requestName(NAME, 0);
  return {
    arrivals,
    get held() {
      return waiting.length;
    },
    get peak() {
      return peak;
    },
    release,
    autoReply(ms) {
      autoMs = ms;
      release();
    },
    close: () => bus.disconnect(),
  };
}

const hold = (device: string): MethodCall => ({
  destination: NAME,
  path: `/org/bluez/hci0/dev_${device}`,
  interface: NAME,
  member: 'Hold',
});

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await sleep(5);
  }
}

let daemon: PrivateBus | undefined;
let service: HeldService | undefined;
const buses: SharedBus[] = [];

async function world(
  maxInFlightCalls: number,
  limits?: Record<string, number>,
): Promise<{ bus: SharedBus; service: HeldService }> {
  daemon = await startPrivateBus(limits ? { limits } : {});
  service = await startHeldService(daemon.address);
  const bus = acquireBus(daemon.address, undefined, { maxInFlightCalls });
  buses.push(bus);
  await bus.ready({ timeoutMs: 10_000 });
  return { bus, service };
}

afterEach(async () => {
  for (const bus of buses.splice(0)) await bus.release();
  service?.close();
  service = undefined;
  await daemon?.stop();
  daemon = undefined;
});

describe('in-flight bound: at most maxInFlightCalls awaiting a reply per connection', () => {
  it('40 calls with a bound of 8: the service never holds more than 8, the rest are sent as replies come, all resolve', async () => {
    const { bus, service } = await world(8);
    const calls = Array.from({ length: 40 }, (_, i) => bus.call(hold(`0${i % 4}`), { timeoutMs: 20_000 }));
    await until('the first calls arrive', () => service.held > 0);
    await sleep(50);
    expect(service.held).toBeLessThanOrEqual(8);
    expect(bus.queuedCount).toBe(40 - service.held);
    while (service.arrivals.length < 40 || service.held > 0) {
      service.release(1);
      await sleep(2);
      expect(service.held).toBeLessThanOrEqual(8);
    }
    await expect(Promise.all(calls)).resolves.toHaveLength(40);
    expect(service.peak).toBeLessThanOrEqual(8);
    expect(bus.peakInFlight).toBeLessThanOrEqual(8);
    expect(bus.pendingCount).toBe(0);
    expect(bus.inFlightCount).toBe(0);
  });

  it("one device's burst does not starve another: B's single call is sent right after one more of A's", async () => {
    const { bus, service } = await world(4); // normal calls: 3 slots, 1 reserved for control calls
    const a = Array.from({ length: 30 }, () => bus.call(hold('AA'), { timeoutMs: 20_000 }));
    const b = bus.call(hold('BB'), { timeoutMs: 20_000 });
    await until('A fills the slots', () => service.held === 3);
    while (!service.arrivals.some((p) => p.endsWith('dev_BB'))) {
      service.release(1);
      await until('the next call is sent', () => service.held === 3 || bus.queuedCount === 0);
    }
    // FIFO would have sent B 31st; round-robin sends it after one more of A's.
    expect(service.arrivals.findIndex((p) => p.endsWith('dev_BB'))).toBe(4);
    service.autoReply(1);
    await Promise.all([...a, b]);
    expect(bus.pendingCount).toBe(0);
  });

  it('a control call (the mirror resync) passes a queue full of normal calls', async () => {
    const { bus, service } = await world(8); // 6 normal slots, 2 reserved
    const normal = Array.from({ length: 20 }, (_, i) => bus.call(hold(`0${i % 2}`), { timeoutMs: 20_000 }));
    await until('normal calls fill their slots', () => service.held === 6);
    const control = bus.call({ ...hold('00'), path: '/' }, { timeoutMs: 20_000, priority: 'control' });
    await until('the control call is sent at once', () => service.arrivals.includes('/'));
    expect(bus.queuedCount).toBe(14);
    service.autoReply(1);
    await Promise.all([...normal, control]);
  });

  it('AddMatch and RemoveMatch go straight to the daemon while every slot is held (it answers them itself)', async () => {
    const { bus, service } = await world(2);
    const held = [bus.call(hold('01'), { timeoutMs: 20_000 }), bus.call(hold('02'), { timeoutMs: 20_000 })];
    const queued = bus.call(hold('03'), { timeoutMs: 20_000 });
    await until('the two slots are taken', () => service.held === 2);
    expect(bus.queuedCount).toBe(1);
    const rule = "type='signal',interface='org.example.Held'";
    await bus.addMatch(rule, { timeoutMs: 2000 });
    expect(bus.matchRules.get(rule)).toBe(1);
    await bus.removeMatch(rule, { timeoutMs: 2000 });
    expect(bus.queuedCount).toBe(1);
    service.autoReply(1);
    await Promise.all([...held, queued]);
  });

  it('a call whose deadline passes while queued rejects with DBusTimeoutError and is never sent', async () => {
    const { bus, service } = await world(2);
    const first = [bus.call(hold('01'), { timeoutMs: 20_000 }), bus.call(hold('02'), { timeoutMs: 20_000 })];
    await until('the two slots are taken', () => service.held === 2);
    const err = await bus.call(hold('03'), { timeoutMs: 150 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DBusTimeoutError);
    expect((err as Error).message).toMatch(/never sent/);
    expect(classifyError(err).class).toBe('noReply');
    service.release();
    await Promise.all(first);
    await sleep(50);
    expect(service.arrivals.filter((p) => p.endsWith('dev_03'))).toEqual([]);
    expect(bus.pendingCount).toBe(0);
  });

  it('an aborted queued call rejects with the reason and is never sent', async () => {
    const { bus, service } = await world(2);
    const first = [bus.call(hold('01'), { timeoutMs: 20_000 }), bus.call(hold('02'), { timeoutMs: 20_000 })];
    await until('the two slots are taken', () => service.held === 2);
    const controller = new AbortController();
    const queued = bus.call(hold('03'), { timeoutMs: 20_000, signal: controller.signal });
    expect(bus.queuedCount).toBe(1);
    const reason = new Error('caller gave up');
    controller.abort(reason);
    await expect(queued).rejects.toBe(reason);
    expect(bus.queuedCount).toBe(0);
    service.release();
    await Promise.all(first);
    await sleep(50);
    expect(service.arrivals.filter((p) => p.endsWith('dev_03'))).toEqual([]);
  });

  it('a call given up on while on the wire keeps its slot until its late reply (dbus-daemon still counts it)', async () => {
    const { bus, service } = await world(2);
    await expect(bus.call(hold('01'), { timeoutMs: 100 })).rejects.toBeInstanceOf(DBusTimeoutError);
    expect(bus.inFlightCount).toBe(1);
    service.release();
    await until('the late reply frees the slot', () => bus.inFlightCount === 0);
    expect(bus.pendingCount).toBe(0);
  });

  it('closing the connection rejects every queued and sent call with BusLostError; nothing stays queued', async () => {
    daemon = await startPrivateBus();
    service = await startHeldService(daemon.address);
    const bus = acquireBus(daemon.address, undefined, { maxInFlightCalls: 2 });
    await bus.ready({ timeoutMs: 10_000 });
    const calls = Array.from({ length: 6 }, (_, i) =>
      bus.call(hold(`0${i}`), { timeoutMs: 20_000 }).catch((e: unknown) => e),
    );
    await until('the two slots are taken', () => service?.held === 2);
    expect(bus.queuedCount).toBe(4);
    await bus.release();
    const errors = await Promise.all(calls);
    expect(errors.every((e) => e instanceof BusLostError)).toBe(true);
    expect(bus.queuedCount).toBe(0);
    expect(bus.pendingCount).toBe(0);
  });

  it("calls made on the MessageBus directly (node-ble's path) share the bound, and are rejected when the bus dies", async () => {
    const { bus, service } = await world(4);
    const raw = bus.messageBus();
    const outcome = (p: Promise<unknown>): Promise<unknown> =>
      p.then(
        () => 'replied',
        (e: unknown) => e,
      );
    const direct = Array.from({ length: 10 }, (_, i) =>
      outcome(raw.call(new dbus.Message({ ...hold(`0${i % 3}`), signature: '', body: [] }))),
    );
    const ours = outcome(bus.call(hold('0A'), { timeoutMs: 20_000 }));
    await until('the slots are taken', () => service.held === 3);
    await sleep(50);
    expect(service.held).toBe(3);
    expect(bus.queuedCount).toBe(8);
    service.release(2);
    await until('queued calls are sent as slots free', () => service.arrivals.length === 5);
    await daemon?.kill();
    const outcomes = await Promise.all([...direct, ours]);
    expect(outcomes.filter((o) => o === 'replied')).toHaveLength(2);
    // dbus-next alone would leave the 3 sent ones pending forever, and the 6 queued were never sent.
    expect(outcomes.filter((o) => o instanceof BusLostError)).toHaveLength(9);
    expect(bus.pendingCount).toBe(0);
  });
});

describe('LimitsExceeded: typed, transient, retried after in-flight calls drain', () => {
  it('a bus configured below the bound refuses calls; each is re-sent after calls drain and all resolve', async () => {
    const { bus, service } = await world(16, { max_replies_per_connection: 4 });
    service.autoReply(20);
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) => bus.call(hold(`0${i % 6}`), { timeoutMs: 20_000 })),
    );
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    expect(bus.limitsExceeded).toBeGreaterThan(0);
    expect(service.arrivals).toHaveLength(12);
    expect(bus.inFlightCount).toBe(0);
  });

  it('with the bound at or under the bus limit the daemon refuses nothing', async () => {
    const { bus, service } = await world(4, { max_replies_per_connection: 4 });
    service.autoReply(5);
    await Promise.all(
      Array.from({ length: 40 }, (_, i) => bus.call(hold(`0${i % 6}`), { timeoutMs: 20_000 })),
    );
    expect(bus.limitsExceeded).toBe(0);
  });

  it('is classified limitsExceeded with its own error class and code, never counted toward escalation', async () => {
    const { bus } = await world(16, { max_replies_per_connection: 1 });
    // One Hold takes the daemon's only reply slot; the next call is refused, re-sent up to 5
    // times after calls drain (nothing drains), then reported typed.
    const blocker = bus.call(hold('01'), { timeoutMs: 20_000 }).catch(() => undefined);
    const err = await bus.call(hold('02'), { timeoutMs: 20_000 }).catch((e: unknown) => e);
    void blocker;
    expect(err).toBeInstanceOf(BusLimitsExceededError);
    const typed = err as BusLimitsExceededError;
    expect(typed.code).toBe('DBUS_LIMITS_EXCEEDED');
    expect(typed.errorClass).toBe('limitsExceeded');
    expect(typed.dbusName).toBe('org.freedesktop.DBus.Error.LimitsExceeded');
    expect(typed.advice).toMatch(/max_replies_per_connection/);
    expect(classifyError(typed)).toMatchObject({ class: 'limitsExceeded', action: 'retryAfterDrain' });
    expect(toBluezError(typed)).toBe(typed);
    expect(countsTowardEscalation('limitsExceeded')).toBe(false);
    const config = {
      diagnose: true,
      clear: true,
      rotate: true,
      reset: true,
      rotateAfter: 1,
      clearAfter: 1,
      resetAfter: 1,
      resetCooldownMs: 0,
      maxLevel: 'reset' as const,
    };
    const ledger = { failures: { hci0: 10 }, lastResetAt: {} };
    expect(
      decideEscalation(config, ledger, {
        adapter: 'hci0',
        failureClass: 'limitsExceeded',
        now: Date.now(),
        canRotate: true,
      }),
    ).toBe('retry');
    expect(emptyLedger()).toEqual({ failures: {}, lastResetAt: {} });
  });
});

describe('maxInFlightCalls is validated before any I/O', () => {
  it.each([
    [0, RangeError],
    [1.5, RangeError],
    [100_001, RangeError],
    ['8', TypeError],
  ])('openBluez({ maxInFlightCalls: %j }) throws %o naming the field', async (value, cls) => {
    const err = await openBluez({
      busAddress: 'unix:path=/nonexistent/bus',
      maxInFlightCalls: value as number,
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(cls);
    expect((err as Error).message).toMatch(/maxInFlightCalls/);
  });
});

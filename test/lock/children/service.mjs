// One BLE "service" process for the cross-process lock tests. argv: <transpiled src dir> <JSON config>.
// Prints one JSON object per line: ready, connected/failed, owner-ready, warn, done. Waits for a
// "go" line on stdin before it starts, and for stdin to close before it disconnects and exits.
import { createInterface } from 'node:readline';

const [srcDir, raw] = process.argv.slice(2);
const config = JSON.parse(raw);
const out = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const lines = createInterface({ input: process.stdin });
const next = () => new Promise((resolve) => lines.once('line', resolve));
const closed = new Promise((resolve) => lines.once('close', resolve));

const lib = await import(`${srcDir}/index.js`);
// Top-level states of the connection actor with CLOCK_MONOTONIC ms (comparable across processes).
const trail = [];
// When a lock lease is handed back: the inspection event comes just before the synchronous unlock,
// so it is a lower bound of the release (a snapshot's time is not: it comes after later entry work).
const releases = [];
const inspect = (e) => {
  if (e.type === '@xstate.action' && e.actorRef?.sessionId === e.rootId) {
    if (e.action?.type === 'releaseDeviceLock' && e.action.params?.lease != null)
      releases.push(Number(process.hrtime.bigint()) / 1e6);
    return;
  }
  if (e.type !== '@xstate.snapshot' || e.actorRef?.sessionId !== e.rootId) return;
  const value = e.snapshot?.value;
  // The step users see (inside the machine's `establishing` frame).
  let step = value;
  while (step && typeof step === 'object') {
    const [key, inner] = Object.entries(step)[0] ?? [];
    step = key === 'establishing' ? inner : key;
  }
  const state = step;
  if (state && trail[trail.length - 1]?.[0] !== state)
    trail.push([state, Number(process.hrtime.bigint()) / 1e6]);
};
const bluez = await lib.openBluez({ busAddress: process.env.DBUS_SYSTEM_BUS_ADDRESS });
out({ event: 'ready', pid: process.pid });
await Promise.race([next(), closed]);
try {
  if (config.owner) {
    const owner = await lib.startDiscoveryOwner(bluez, { adapters: ['hci0'], scanLock: config.scanLock });
    out({ event: 'owner-ready' });
    await closed;
    await owner.stop();
  } else {
    const connection = await lib.establishConnection({
      bluez,
      address: config.address,
      adapters: config.adapters ?? ['hci0'],
      lock: config.lock,
      inspect,
      discovery: config.discovery,
      lateGattDelaysMs: [],
      attemptTimeoutMs: config.attemptTimeoutMs ?? 15_000,
      rediscoveryTimeoutMs: 10_000,
      logger: { warn: (_fields, message) => out({ event: 'warn', message }) },
    });
    out({
      event: 'connected',
      adapter: connection.adapter,
      attempts: connection.attempts.length,
      trail,
      releases,
    });
    await closed;
    await connection.disconnect();
  }
} catch (err) {
  out({
    event: 'failed',
    name: err?.name,
    code: err?.code,
    message: String(err?.message ?? err),
    trail,
    releases,
  });
}
await bluez.close();
out({ event: 'done' });
process.exit(0);

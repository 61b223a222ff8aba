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
      adapters: ['hci0'],
      lock: config.lock,
      discovery: config.discovery,
      lateGattDelaysMs: [],
      attemptTimeoutMs: 15_000,
      rediscoveryTimeoutMs: 10_000,
      logger: { warn: (_fields, message) => out({ event: 'warn', message }) },
    });
    out({ event: 'connected', adapter: connection.adapter, attempts: connection.attempts.length });
    await closed;
    await connection.disconnect();
  }
} catch (err) {
  out({ event: 'failed', name: err?.name, code: err?.code, message: String(err?.message ?? err) });
}
await bluez.close();
out({ event: 'done' });
process.exit(0);

#!/usr/bin/env node
// App code using establishConnection: connect one device with every BlueZ workaround, read a
// characteristic, take three notifications, disconnect. It talks to whatever BlueZ is on the
// system bus — a real bluetoothd, or the simulator of `bluez-cm sim`:
//
//   shell 1:  npx bluez-cm sim --scenario examples/scenarios/two-adapters.json
//   shell 2:  DBUS_SYSTEM_BUS_ADDRESS=unix:path=/tmp/bluez-cm-bus-…/bus \
//               node examples/establish-connection.mjs A4:C1:38:00:00:02
//
// In that scenario the thermometer A4:C1:38:00:00:02 is heard by hci1 only (BlueZ has it cached
// there) and its first connect fails with an RF abort ("le-connection-abort-by-local"); the
// attempt list shows the retry.
// Ctrl-C while connecting cancels cleanly (AbortError, no half-open link left behind).
/* global AbortController, setTimeout -- Node globals the lint config does not declare for .mjs */
import { establishConnection, readCharacteristic } from 'bluez-connection-manager';

const TEMPERATURE = '00002a6e-0000-1000-8000-00805f9b34fb';
const address = process.argv[2] ?? 'A4:C1:38:00:00:02';

const controller = new AbortController();
process.once('SIGINT', () => controller.abort());

const connection = await establishConnection({
  address,
  escalation: 'sensor', // never resets an adapter for a sensor
  overallTimeoutMs: 60_000,
  signal: controller.signal,
  // Connected is not enough: insist on the characteristic we need (read once, within the attempt).
  validate: readCharacteristic(TEMPERATURE),
  // Any pino-style logger works ((fields, message)), console too.
  logger: {
    info: (_fields, m) => console.log(`  info: ${m}`),
    warn: (_fields, m) => console.log(`  warn: ${m}`),
  },
});

try {
  console.log(`connected to ${connection.address} on ${connection.adapter}`);
  for (const a of connection.attempts) {
    const cause = a.cause === null ? 'ok' : `${a.cause.class}: ${a.cause.message}`;
    console.log(`  attempt ${a.number} on ${a.adapter}: ${a.outcome} (${cause})`);
  }

  // From here on it is plain node-ble, on the library's bus connection.
  const characteristic = await findCharacteristic(connection.gatt, TEMPERATURE);
  const value = await characteristic.readValue();
  console.log(`temperature: ${(value.readInt16LE(0) / 100).toFixed(2)} °C (raw ${value.toString('hex')})`);

  let count = 0;
  const three = new Promise((resolve) => {
    characteristic.on('valuechanged', (buffer) => {
      count += 1;
      console.log(`notification ${count}: ${buffer.toString('hex')}`);
      if (count === 3) resolve();
    });
  });
  await characteristic.startNotifications();
  await Promise.race([three, timeout(15_000, 'three notifications')]);
  await characteristic.stopNotifications();
} finally {
  // Verified disconnect (bounded), then the BlueZ client opened for this connection is closed.
  await connection.disconnect();
  console.log('disconnected');
}

async function findCharacteristic(gatt, uuid) {
  for (const serviceUuid of await gatt.services()) {
    const service = await gatt.getPrimaryService(serviceUuid);
    if ((await service.characteristics()).includes(uuid)) return service.getCharacteristic(uuid);
  }
  throw new Error(`${uuid} not found`);
}

function timeout(ms, what) {
  return new Promise((_, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
    timer.unref();
  });
}

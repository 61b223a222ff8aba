#!/usr/bin/env node
// App code that must stay connected: keep-alive reconnects after a link loss (or a zombie the
// watchdog declares), `closed` says when the library has given up. Against `bluez-cm sim`:
//
//   shell 1:  npx bluez-cm sim --scenario examples/scenarios/link-drop.json
//   shell 2:  DBUS_SYSTEM_BUS_ADDRESS=unix:path=/tmp/bluez-cm-bus-…/bus node examples/keep-alive.mjs
//
// In that scenario the battery monitor's link drops 1.5 s after it connects (a remote link loss:
// BlueZ signals Connected=false); the connection comes back by itself.
/* global setTimeout -- a Node global the lint config does not declare for .mjs */
import { establishConnection } from 'bluez-connection-manager';

const BMS = process.argv[2] ?? 'C8:47:8C:00:00:01';

const connection = await establishConnection({
  address: BMS,
  keepAlive: true, // reconnect after a link loss or a zombie, with the failure class's backoff
  // A BMS notifies every 1–5 s: 15 s of silence on a link BlueZ still calls connected is a zombie.
  watchdog: { timeoutMs: 15_000 },
  escalation: 'battery',
});
console.log(`connected to ${connection.address} on ${connection.adapter}`);

// Both events come from the connection actor; the app only watches.
let lost = false;
connection.actor.on('link-lost', (e) => {
  lost = true;
  console.log(`link lost on ${e.adapter} (${e.reason}); keep-alive reconnects`);
});
connection.actor.on('zombie', (e) => console.log(`zombie: silent for ${e.silenceMs} ms on ${e.adapter}`));
const back = new Promise((resolve) => {
  const subscription = connection.actor.subscribe((snapshot) => {
    if (lost && snapshot.value === 'connected') {
      subscription.unsubscribe();
      resolve(snapshot.context.adapter);
    }
  });
});
const adapter = await Promise.race([back, timeout(30_000, 'the reconnect')]);
console.log(`reconnected on ${adapter}`);

await connection.disconnect(); // verified disconnect; ends keep-alive
const end = await connection.closed;
console.log(`closed: ${end.reason}`);

function timeout(ms, what) {
  return new Promise((_, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms);
    timer.unref();
  });
}

// Watching the machines in the Stately inspector: the pool and every device's connection actor
// (with the actors each one invokes) appear live, as a tree, in your browser.
//
//   npm install @statelyai/inspect
//   shell 1:  npx bluez-cm sim --scenario examples/scenarios/two-adapters.json
//   shell 2:  DBUS_SYSTEM_BUS_ADDRESS=unix:path=/tmp/bluez-cm-bus-…/bus node inspector.js
//
// It starts @statelyai/inspect's local bridge on port 8080, which opens https://stately.ai/inspect
// in your browser. With INSPECT_WS_URL set it sends to that WebSocket instead (no browser; this is
// how CI checks the example).
import { createWebSocketInspector } from '@statelyai/inspect';
import { createInspectorServer } from '@statelyai/inspect/server';
import { createAdapterPool, openBluez } from 'bluez-connection-manager';

const DEVICES = ['C8:47:8C:00:00:01', 'A4:C1:38:00:00:02'];
const target = process.env['INSPECT_WS_URL'];
const bridge = target === undefined ? createInspectorServer({ port: 8080 }) : undefined;
const inspector = createWebSocketInspector({ url: target ?? 'ws://localhost:8080' });

const bluez = await openBluez();
// `inspector.inspect` is passed unchanged: the pool and all of its children are inspected.
const pool = createAdapterPool({ bluez, inspect: inspector.inspect });
try {
  for (const address of DEVICES) {
    const { adapter } = await pool.connected(address, { signal: AbortSignal.timeout(60_000) });
    console.log(`${address} connected on ${adapter}: see it in the inspector`);
  }
  // Keep the links up for a moment to look at them, then disconnect (verified) and stop.
  await new Promise((resolve) => setTimeout(resolve, Number(process.env['INSPECT_LINGER_MS'] ?? 10_000)));
  for (const address of DEVICES) await pool.disconnect(address);
  console.log('disconnected');
} finally {
  await pool.close();
  await bluez.close();
  inspector.stop();
  bridge?.stop();
}

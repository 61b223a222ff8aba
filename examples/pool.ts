// App code with several devices: the adapter pool connects them across the adapters that hear
// them, keeps each one connected (keep-alive) and says where each one is. Against `bluez-cm sim`:
//
//   shell 1:  npx bluez-cm sim --scenario examples/scenarios/two-adapters.json
//   shell 2:  DBUS_SYSTEM_BUS_ADDRESS=unix:path=/tmp/bluez-cm-bus-…/bus node pool.js
//
// (This file is TypeScript: compile it with tsc, or run it with a TypeScript-aware runner.)
import { createAdapterPool, openBluez, type ConnectionLogger } from 'bluez-connection-manager';

const DEVICES = ['C8:47:8C:00:00:01', 'A4:C1:38:00:00:02', 'F0:F5:BD:00:00:03'];

const logger: ConnectionLogger = {
  info: (_fields, message) => console.log(`  info: ${message}`),
  warn: (_fields, message) => console.log(`  warn: ${message}`),
};

const bluez = await openBluez(); // DBUS_SYSTEM_BUS_ADDRESS or the system bus
const pool = createAdapterPool({ bluez, slotsPerAdapter: 5, logger });
try {
  const results = await Promise.allSettled(
    DEVICES.map((address) =>
      pool.connected(address, { escalation: 'sensor', signal: AbortSignal.timeout(60_000) }),
    ),
  );
  results.forEach((result, i) => {
    if (result.status === 'fulfilled')
      console.log(`${result.value.address} connected on ${result.value.adapter}`);
    else console.log(`${DEVICES[i]} failed: ${String(result.reason)}`);
  });
  for (const adapter of pool.snapshot().adapters) {
    console.log(`${adapter.name}: ${adapter.inUse.length}/${adapter.limit} slots in use`);
  }
  for (const address of DEVICES) await pool.disconnect(address); // verified disconnects
  console.log('all disconnected');
} finally {
  await pool.close();
  await bluez.close();
}

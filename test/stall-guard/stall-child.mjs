// A library user whose main thread blocks while a Connect is pending. Run by stall-guard.test.ts as
// a child process inside the transpiled package; prints one JSON object per line on stdout.
import { setTimeout } from 'node:timers';
import { openSync, fstatSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createConnectionActor, openBluez } from 'bluez-connection-manager';
import { stallGuardLocks, stallGuardOf } from 'bluez-connection-manager/machines';

const [address, adapter, blockMsText] = process.argv.slice(2);
const blockMs = Number(blockMsText);
const say = (o) => process.stdout.write(`${JSON.stringify(o)}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const bluez = await openBluez({ busAddress: process.env.DBUS_SYSTEM_BUS_ADDRESS });
const warnings = [];
const actor = createConnectionActor({
  address,
  bluez,
  adapters: [adapter],
  attemptTimeoutMs: 20_000,
  disconnectTimeoutMs: 1000,
  lateGattDelaysMs: [100],
  backoffMs: { stalled: 50 },
  stallGuardMs: 1000,
  logger: { warn: (_fields, message) => warnings.push(message) },
});
const guard = stallGuardOf(actor);
const workerDeadline = Date.now() + 30_000; // a loaded machine starts threads slowly
while (guard.workerBusName === null) {
  if (Date.now() > workerDeadline) throw new Error('the stall guard worker did not connect to the bus');
  await sleep(10);
}
say({ type: 'names', main: bluez.uniqueName, worker: guard.workerBusName });

// A slot lock as the lock module would announce it (an open fd; flock locks live on it).
const lockFd = openSync(join(mkdtempSync(join(tmpdir(), 'stall-lock-')), 'slot-0.lock'), 'w');
const lockIno = fstatSync(lockFd).ino;
const lock = stallGuardLocks.held(lockFd, 'hci1 slot 0');

let blocked = false;
actor.subscribe((s) => {
  // The `requesting` step of `connecting`, where Device1.Connect is sent.
  const sending = s.matches({ establishing: { connecting: 'requesting' } });
  if (!sending || blocked) return;
  blocked = true;
  // Let the Connect go out, then block this thread completely.
  setTimeout(() => {
    const start = Date.now();
    say({ type: 'block-start', at: start });
    while (Date.now() - start < blockMs) {
      // busy: no timer, no I/O callback, no promise runs on this thread now
    }
    say({ type: 'block-end', at: Date.now() });
  }, 300);
});
actor.send({ type: 'CONNECT' });
const connectDeadline = Date.now() + 40_000;
while (actor.getSnapshot().value !== 'connected') {
  if (Date.now() > connectDeadline || actor.getSnapshot().status !== 'active') {
    say({ type: 'stuck', state: actor.getSnapshot().value, attempts: actor.getSnapshot().context.attempts });
    process.exit(1);
  }
  await sleep(10);
}
// The number may have been reused by another file since: only our lock file counts.
const lockFdOpen = (() => {
  try {
    return fstatSync(lockFd).ino === lockIno;
  } catch {
    return false;
  }
})();
say({
  type: 'lock',
  releasedByGuard: lock.release() === false,
  lockFdOpen,
  held: stallGuardLocks.heldCount(),
});
say({
  type: 'connected',
  attempts: actor.getSnapshot().context.attempts.map((a) => ({
    number: a.number,
    outcome: a.outcome,
    class: a.cause?.class ?? null,
    message: a.cause?.message ?? null,
  })),
  delay: guard.eventLoopDelay(),
  warnings,
});
actor.send({ type: 'DISCONNECT' });
for (let i = 0; actor.getSnapshot().value !== 'idle' && i < 1000; i++) await sleep(10);
actor.stop();
await guard.close();
await bluez.close();
// What could keep this process alive now (the process must also exit by itself).
say({ type: 'closed', resources: process.getActiveResourcesInfo() });

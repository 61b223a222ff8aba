/**
 * Connecting through establishConnection and the connection actor: the happy path with a verified
 * disconnect, an unknown device, and cancellation at the two points where BlueZ holds state for
 * us (a running discovery, a pending Device1.Connect).
 */
import { expect } from 'vitest';
import {
  ConnectionFailedError,
  createConnectionActor,
  establishConnection,
  isAbortError,
} from '../../../../src/index.js';
import { INITIAL_RW_VALUE, RW_CHAR_UUID, SERVICE_UUID } from '../../../conformance/peripheral-spec.js';
import { connectedAnywhere, discoveringAnywhere, eventually, kernelLinks } from '../helpers.js';
import type { LibraryScenario } from '../types.js';

export const connectScenarios: LibraryScenario[] = [
  {
    name: 'establishConnection over the guest TCP bus connects, reads and verifies its disconnect',
    async run(ctx) {
      const watcher = await ctx.openBluez();
      const conn = await establishConnection({
        address: ctx.peripheral,
        busAddress: ctx.busAddress, // tcp: — ANONYMOUS by default
        attemptTimeoutMs: 30_000,
        overallTimeoutMs: 90_000,
      });
      ctx.defer(() => conn.disconnect());
      ctx.log(`connected on ${conn.adapter} after ${conn.attempts.length} attempt(s)`);
      expect(conn.adapter).toBe(ctx.central);
      expect(conn.attempts).toHaveLength(1);
      const chr = await (await conn.gatt.getPrimaryService(SERVICE_UUID)).getCharacteristic(RW_CHAR_UUID);
      expect([...(await chr.readValue())]).toEqual(INITIAL_RW_VALUE);
      await conn.disconnect();
      ctx.log('verified disconnect returned');
      await eventually(
        'Connected=false in a second client',
        () => !connectedAnywhere(watcher, ctx.peripheral),
        5000,
      );
      expect(await kernelLinks(ctx, ctx.central)).toEqual([]);
    },
  },
  {
    name: 'an unknown device fails with error class notFound, nothing left discovering',
    async run(ctx) {
      const watcher = await ctx.openBluez();
      const err = await establishConnection({
        address: '11:22:33:44:55:66',
        busAddress: ctx.busAddress,
        adapters: [ctx.central],
        maxAttempts: 2,
        // The attempt deadline ends each search (before the rediscovery bound would): a search
        // that did not find the device is notFound whoever's deadline ended it.
        rediscoveryTimeoutMs: 10_000,
        attemptTimeoutMs: 4000,
        overallTimeoutMs: 60_000,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ConnectionFailedError);
      const failed = err as ConnectionFailedError;
      ctx.log(`failed: ${failed.attempts.map((a) => `${a.adapter}:${a.errorClass}/${a.code}`).join(', ')}`);
      expect(failed.errorClass).toBe('notFound');
      expect(failed.attempts.map((a) => a.errorClass)).toEqual(failed.attempts.map(() => 'notFound'));
      await eventually('discovery stopped', () => !discoveringAnywhere(watcher), 5000);
    },
  },
  {
    name: 'cancelling during discovery: AbortError, discovery stopped, no link',
    async run(ctx) {
      const watcher = await ctx.openBluez();
      // The peripheral is silent, so the search runs until cancelled.
      await ctx.target.stopAdvertising();
      const controller = new AbortController();
      const pending = establishConnection({
        address: ctx.peripheral,
        busAddress: ctx.busAddress,
        adapters: [ctx.central],
        attemptTimeoutMs: 30_000,
        signal: controller.signal,
      }).catch((e: unknown) => e);
      await eventually(
        'hci0 discovering',
        () => watcher.mirror.adapter(ctx.central)?.discovering === true,
        20_000,
      );
      ctx.log('discovering; cancelling');
      controller.abort();
      const err = await pending;
      ctx.log(`rejected: ${String(err)}`);
      expect(isAbortError(err)).toBe(true);
      await eventually('discovery stopped', () => !discoveringAnywhere(watcher), 5000);
      expect(connectedAnywhere(watcher, ctx.peripheral)).toBe(false);
      expect(await kernelLinks(ctx, ctx.central)).toEqual([]);
    },
  },
  {
    name: 'cancelling a pending Connect: the actor ends cancelled and BlueZ holds no link or attempt',
    async run(ctx) {
      const bluez = await ctx.openBluez();
      // Known to BlueZ (discovered once), then silent: Device1.Connect stays pending.
      await bluez.startDiscovery(ctx.central, { timeoutMs: 10_000 });
      await eventually(
        'the peripheral discovered',
        () => bluez.mirror.device(ctx.central, ctx.peripheral) !== undefined,
        20_000,
      );
      await bluez.stopDiscovery(ctx.central, { timeoutMs: 10_000 });
      await ctx.target.stopAdvertising();
      const actor = createConnectionActor({
        bluez,
        address: ctx.peripheral,
        adapters: [ctx.central],
        attemptTimeoutMs: 30_000,
      });
      ctx.defer(() => actor.stop());
      actor.start();
      actor.send({ type: 'CONNECT' });
      await eventually(
        'the actor connecting',
        () => actor.getSnapshot().matches({ establishing: 'connecting' }),
        10_000,
      );
      // Give Connect time to reach the controller (LE Create Connection pending).
      await new Promise((r) => setTimeout(r, 1500));
      ctx.log('Connect pending; cancelling');
      actor.send({ type: 'CANCEL', reason: 'aborted' });
      await eventually('the actor done', () => actor.getSnapshot().status === 'done', 20_000);
      ctx.log(`actor ended in ${JSON.stringify(actor.getSnapshot().value)}`);
      expect(connectedAnywhere(bluez, ctx.peripheral)).toBe(false);
      // The pending LE connection attempt was withdrawn: advertising again does not bring up a link.
      await ctx.target.startAdvertising();
      await new Promise((r) => setTimeout(r, 3000));
      expect(connectedAnywhere(bluez, ctx.peripheral)).toBe(false);
      expect(await kernelLinks(ctx, ctx.central)).toEqual([]);
    },
  },
];

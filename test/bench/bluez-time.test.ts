/**
 * The benchmark's "BlueZ time" (scripts/bench/bluez-time.ts): what the simulator spent answering,
 * from its call log and latency table.
 */
import { describe, expect, it } from 'vitest';
import { bluezTimeMs } from '../../scripts/bench/bluez-time.js';
import { resolveTiming, type SimCall } from '../../src/testing/index.js';

const timing = resolveTiming(1); // resolveServicesMs 300, advertisingIntervalMs 1000
const DEV = '/org/bluez/hci0/dev_AA_BB_CC_DD_EE_01';
const call = (member: string, at: number, repliedAt?: number, extra: Partial<SimCall> = {}): SimCall => ({
  at,
  sender: ':1.5',
  path: member === 'RemoveDevice' || member.endsWith('Discovery') ? '/org/bluez/hci0' : DEV,
  interface:
    member === 'RemoveDevice' || member.endsWith('Discovery') ? 'org.bluez.Adapter1' : 'org.bluez.Device1',
  member,
  ...(repliedAt === undefined ? {} : { repliedAt }),
  ...extra,
});

describe('bluezTimeMs', () => {
  it('a successful Connect counts until ServicesResolved (reply + resolveServicesMs, + a late-GATT delay)', () => {
    expect(bluezTimeMs([call('Connect', 100, 600)], timing)).toBe(800);
    expect(bluezTimeMs([call('Connect', 100, 600)], timing, { lateGattMs: 1500 })).toBe(2300);
  });

  it('a failed Connect counts until its error; StartDiscovery until the first sighting; overlaps once', () => {
    const calls = [
      call('Connect', 0, 600, { error: 'org.bluez.Error.Failed' }),
      call('StartDiscovery', 1000, 1010),
      call('StopDiscovery', 1600, 1605),
    ];
    expect(bluezTimeMs(calls, timing)).toBe(600 + 510 + 5);
    const twoClients = [call('Connect', 0, 600), call('Connect', 100, 700, { sender: ':1.6' })];
    expect(bluezTimeMs(twoClients, timing)).toBe(1000);
  });

  it('a call never answered, or answered only after the client went on to its next call, counts nothing', () => {
    expect(bluezTimeMs([call('Disconnect', 0)], timing)).toBe(0);
    // A phantom's Disconnect given up at 5 s, answered when RemoveDevice dropped the link at 7 s.
    const calls = [call('Disconnect', 0, 7000), call('RemoveDevice', 5000, 7000)];
    expect(bluezTimeMs(calls, timing)).toBe(2000);
  });
});

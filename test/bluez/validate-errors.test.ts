import { describe, expect, it } from 'vitest';
import dbus from 'dbus-next';
import type { BluezError } from '../../src/bluez/errors.js';
import {
  AbortedError,
  AdapterNotReadyError,
  BluezUnavailableError,
  ConnectionFailedError,
  DBusCallError,
  DBusTimeoutError,
  DeviceNotFoundError,
  InProgressError,
  NoReplyError,
  NotConnectedError,
  OutOfSlotsError,
  classifyError,
  toBluezError,
} from '../../src/bluez/errors.js';
import {
  adapterOfPath,
  adapterPath,
  devicePath,
  devicePathOf,
  validateAdapterName,
  validateMac,
  validateTimeoutMs,
} from '../../src/bluez/validate.js';
import { validateCharacteristicPath } from '../../src/bluez/gatt.js';
import { decodeManagedObjects, toDevice } from '../../src/bluez/variant.js';

describe('input validation names the field and happens before I/O', () => {
  it('a MAC is upper-cased; malformed ones are RangeErrors naming the field', () => {
    expect(validateMac('aa:bb:cc:dd:ee:0f')).toBe('AA:BB:CC:DD:EE:0F');
    expect(() => validateMac('AA:BB:CC:DD:EE', 'address')).toThrow(RangeError);
    expect(() => validateMac('AA-BB-CC-DD-EE-FF', 'address')).toThrow(/address/);
    expect(() => validateMac('AA:BB:CC:DD:EE:FF/../x')).toThrow(RangeError);
    expect(() => validateMac(42, 'device')).toThrow(TypeError);
    expect(() => validateMac(42, 'device')).toThrow(/device/);
  });

  it('adapter names must be hciN', () => {
    expect(validateAdapterName('hci12')).toBe('hci12');
    for (const bad of ['hci', 'hci01', 'HCI0', 'hci0/dev_x', 'eth0', '']) {
      expect(() => validateAdapterName(bad)).toThrow(RangeError);
    }
    expect(() => validateAdapterName(undefined)).toThrow(/adapter/);
  });

  it('timeouts must be finite and non-negative', () => {
    expect(validateTimeoutMs(0, 't')).toBe(0);
    expect(() => validateTimeoutMs(-5, 'attemptTimeoutMs')).toThrow(/attemptTimeoutMs/);
    expect(() => validateTimeoutMs(Number.NaN, 't')).toThrow(RangeError);
    expect(() => validateTimeoutMs(Infinity, 't')).toThrow(RangeError);
    expect(() => validateTimeoutMs('5', 't')).toThrow(TypeError);
  });

  it('paths are only built from validated parts', () => {
    expect(adapterPath('hci1')).toBe('/org/bluez/hci1');
    expect(devicePath('hci1', 'aa:bb:cc:dd:ee:ff')).toBe('/org/bluez/hci1/dev_AA_BB_CC_DD_EE_FF');
    expect(() => devicePath('hci1', 'nope')).toThrow(RangeError);
    expect(adapterOfPath('/org/bluez/hci3/dev_AA_BB_CC_DD_EE_FF/service0001')).toBe('hci3');
    expect(devicePathOf('/org/bluez/hci3/dev_AA_BB_CC_DD_EE_FF/service0001/char0002')).toBe(
      '/org/bluez/hci3/dev_AA_BB_CC_DD_EE_FF',
    );
    expect(
      validateCharacteristicPath('/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF/service0001/char0002'),
    ).toContain('char');
    expect(() => validateCharacteristicPath('/org/bluez/hci0/dev_AA_BB_CC_DD_EE_FF')).toThrow(RangeError);
    expect(() => validateCharacteristicPath('/org/bluez/hci0/../x')).toThrow(RangeError);
  });
});

describe('classification of hand-made errors (the simulator-driven rows live in classify.test.ts)', () => {
  const dbusError = (name: string, text: string) => new dbus.DBusError(name, text);

  it('the name decides before the text', () => {
    // Text says "not connected", but the name says InProgress: the name wins.
    expect(classifyError(dbusError('org.bluez.Error.InProgress', 'Not connected')).class).toBe('inProgress');
    expect(classifyError(dbusError('org.bluez.Error.Failed', 'le-connection-abort-by-local')).class).toBe(
      'aborted',
    );
    expect(classifyError(dbusError('org.bluez.Error.Failed', 'br-connection-canceled')).class).toBe(
      'aborted',
    );
    expect(classifyError(dbusError('org.bluez.Error.Failed', 'Software caused connection abort')).class).toBe(
      'aborted',
    );
    expect(classifyError(dbusError('org.bluez.Error.Failed', 'No available connection slot')).class).toBe(
      'outOfSlots',
    );
    expect(
      classifyError(
        dbusError('org.bluez.Error.Failed', 'Connection rejected due to limited resources (0x0d)'),
      ).class,
    ).toBe('outOfSlots');
    expect(classifyError(dbusError('org.bluez.Error.Failed', 'Something else')).class).toBe('other');
  });

  it("node-ble's plain Errors are classified by text", () => {
    expect(classifyError(new Error('Device not found')).class).toBe('notFound');
    expect(classifyError(new Error('Not connected')).class).toBe('notConnected');
    expect(classifyError(new Error('boom')).class).toBe('other');
  });

  it('our own errors keep their class; platform TimeoutError counts as noReply', () => {
    expect(classifyError(new DBusTimeoutError('a.b', '/x', 10)).class).toBe('noReply');
    expect(classifyError(new DOMException('late', 'TimeoutError')).class).toBe('noReply');
    expect(classifyError(new ConnectionFailedError('x', { errorClass: 'outOfSlots' })).class).toBe(
      'outOfSlots',
    );
  });

  it('a final failure after validation or phantom attempts keeps that class as its errorClass; as a BlueZ error class it is other', () => {
    const failed = new ConnectionFailedError('x', {
      errorClass: 'validation',
      attempts: [
        { attempt: 1, adapter: 'hci0', errorClass: 'validation', code: 'VALIDATION_FAILED', message: 'm' },
      ],
    });
    expect(failed.errorClass).toBe('validation');
    expect(failed.attempts[0]?.errorClass).toBe('validation');
    expect(failed.advice).toMatch(/validation/);
    expect(classifyError(failed).class).toBe('other');
    expect(new ConnectionFailedError('x', { errorClass: 'phantom' }).advice).toMatch(
      /closeInactiveConnections/,
    );
    expect(new ConnectionFailedError('x', { errorClass: 'aborted' }).errorClass).toBe('aborted');
  });

  it('backoffs follow the SPEC §5 table', () => {
    const backoff = (name: string, text = '') => classifyError(dbusError(name, text)).backoffMs;
    expect(backoff('org.bluez.Error.InProgress')).toBe(250);
    expect(backoff('org.bluez.Error.Failed', 'le-connection-abort-by-local')).toBe(250);
    expect(backoff('org.bluez.Error.Failed', 'connection slot')).toBe(4000);
    expect(backoff('org.bluez.Error.DoesNotExist')).toBe(4000);
    expect(backoff('org.bluez.Error.NotReady')).toBe(1000);
    expect(backoff('org.freedesktop.DBus.Error.NoReply')).toBe(250);
    expect(backoff('org.freedesktop.DBus.Error.ServiceUnknown')).toBe(0);
    expect(backoff('org.bluez.Error.NotConnected')).toBe(0);
    expect(backoff('com.example.Other')).toBe(100);
  });

  it('toBluezError maps each class to its typed error with code, D-Bus name, adapter and advice', () => {
    const cases: Array<[string, string, new (...a: never[]) => BluezError, string]> = [
      ['org.bluez.Error.InProgress', 'x', InProgressError, 'IN_PROGRESS'],
      ['org.bluez.Error.Failed', 'le-connection-abort-by-local', AbortedError, 'CONNECTION_ABORTED'],
      ['org.bluez.Error.Failed', 'connection slot', OutOfSlotsError, 'OUT_OF_SLOTS'],
      ['org.freedesktop.DBus.Error.UnknownObject', 'x', DeviceNotFoundError, 'DEVICE_NOT_FOUND'],
      ['org.bluez.Error.NotReady', 'x', AdapterNotReadyError, 'ADAPTER_NOT_READY'],
      ['org.freedesktop.DBus.Error.NoReply', 'x', NoReplyError, 'DBUS_NO_REPLY'],
      ['org.freedesktop.DBus.Error.NameHasNoOwner', 'x', BluezUnavailableError, 'BLUEZ_UNAVAILABLE'],
      ['org.bluez.Error.NotConnected', 'x', NotConnectedError, 'NOT_CONNECTED'],
      ['org.bluez.Error.Failed', 'x', DBusCallError, 'DBUS_CALL_FAILED'],
    ];
    for (const [name, text, cls, code] of cases) {
      const e = toBluezError(dbusError(name, text), { adapter: 'hci1', member: 'org.bluez.Device1.Connect' });
      expect(e).toBeInstanceOf(cls);
      expect(e).toMatchObject({ code, dbusName: name, adapter: 'hci1' });
      expect((e as BluezError).advice.length).toBeGreaterThan(20);
      expect(e.message).toContain('org.bluez.Device1.Connect');
    }
  });
});

describe('variants are unpacked into typed snapshots', () => {
  it('a GetManagedObjects reply becomes plain maps and a typed device', () => {
    const V = dbus.Variant;
    const tree = decodeManagedObjects({
      '/org/bluez/hci1/dev_AA_BB_CC_DD_EE_FF': {
        'org.bluez.Device1': {
          Address: new V('s', 'AA:BB:CC:DD:EE:FF'),
          Adapter: new V('o', '/org/bluez/hci1'),
          Connected: new V('b', true),
          ServicesResolved: new V('b', false),
          RSSI: new V('n', -71),
          ManufacturerData: new V('a{qv}', { 741: new V('ay', Buffer.from([1, 2])) }),
          ServiceData: new V('a{sv}', {
            '0000180f-0000-1000-8000-00805f9b34fb': new V('ay', Buffer.from([9])),
          }),
          UUIDs: new V('as', ['0000180f-0000-1000-8000-00805f9b34fb']),
        },
      },
    });
    const props = tree.get('/org/bluez/hci1/dev_AA_BB_CC_DD_EE_FF')?.get('org.bluez.Device1');
    expect(props).toBeDefined();
    const dev = toDevice('/org/bluez/hci1/dev_AA_BB_CC_DD_EE_FF', props ?? new Map());
    expect(dev).toMatchObject({ adapter: 'hci1', address: 'AA:BB:CC:DD:EE:FF', connected: true, rssi: -71 });
    expect(dev.servicesResolved).toBe(false);
    expect(dev.manufacturerData.get(741)).toEqual(Buffer.from([1, 2]));
    expect(dev.serviceData.get('0000180f-0000-1000-8000-00805f9b34fb')).toEqual(Buffer.from([9]));
    for (const v of props?.values() ?? []) expect(v).not.toBeInstanceOf(V);
  });
});

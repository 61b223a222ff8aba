/**
 * dbus-next 0.10.2 cannot send a dictionary with integer keys: it takes the
 * keys from Object.keys() (always strings) and its uint16 marshaller rejects
 * strings ("Data: 741 was not of type number"). BlueZ's
 * Device1.ManufacturerData is `a{qv}`, so the simulator could not export it.
 *
 * The fix is narrow on purpose: only the `q` (uint16) marshaller, and only
 * for strings of decimal digits, is taught to accept the key. It is applied
 * once per process when the simulator is loaded; nothing else changes.
 */
import { createRequire } from 'node:module';

interface SimpleMarshaller {
  marshall(ps: unknown, data: unknown): void;
}
interface Marshallers {
  MakeSimpleMarshaller(type: string): SimpleMarshaller;
  __bluezSimPatched?: boolean;
}

const require = createRequire(import.meta.url);

export function patchDbusNextIntegerDictKeys(): void {
  const marshallers = require('dbus-next/lib/marshallers.js') as Marshallers;
  if (marshallers.__bluezSimPatched) return;
  const original = marshallers.MakeSimpleMarshaller.bind(marshallers);
  marshallers.MakeSimpleMarshaller = (type: string) => {
    const m = original(type);
    if (type !== 'q') return m;
    const marshall = m.marshall.bind(m);
    m.marshall = (ps: unknown, data: unknown) =>
      marshall(ps, typeof data === 'string' && /^\d+$/.test(data) ? Number(data) : data);
    return m;
  };
  marshallers.__bluezSimPatched = true;
}

patchDbusNextIntegerDictKeys();

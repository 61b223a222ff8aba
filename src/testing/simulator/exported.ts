/**
 * dbus-next service interfaces built from a table instead of decorators.
 *
 * Why tables: TypeScript 5 standard decorators do not type-check with
 * dbus-next's legacy decorators, while `Interface.configureMembers` does. One
 * class per BlueZ interface is generated from its member table, and every
 * member delegates to a backend object of the simulator, so the D-Bus surface
 * (what introspection shows) and the behaviour live in separate files.
 */
import dbus from 'dbus-next';

/** A property of a D-Bus interface: name, D-Bus signature, access. */
export interface PropertySpec {
  name: string;
  signature: string;
  access: 'read' | 'readwrite';
}

/** A method of a D-Bus interface. */
export interface MethodSpec {
  name: string;
  in: string;
  out: string;
}

/** A signal of a D-Bus interface. */
export interface SignalSpec {
  name: string;
  signature: string;
}

/** The D-Bus surface of one interface. */
export interface InterfaceSpec {
  name: string;
  properties: PropertySpec[];
  methods: MethodSpec[];
  signals: SignalSpec[];
}

/** What an exported interface delegates to. */
export interface InterfaceBackend {
  /** Current value of a property, or undefined when BlueZ would omit it (optional property not set). */
  get(name: string): unknown;
  /** Called for Properties.Set after the simulator checked access and signature. */
  set?(name: string, value: unknown): void | Promise<void>;
  /** Called for a method call; may return a promise (the reply is sent when it settles). */
  call(member: string, args: unknown[]): unknown;
}

/** An exported instance: a dbus-next Interface with a backend. */
export interface ExportedInterface extends dbus.interface.Interface {
  readonly spec: InterfaceSpec;
  readonly backend: InterfaceBackend;
  /** Emits the named signal with the given arguments. */
  emitSignal(name: string, args: unknown[]): void;
}

type ExportedClass = new (backend: InterfaceBackend) => ExportedInterface;

const classes = new Map<string, ExportedClass>();

/** The generated class for a spec (cached per interface name). */
export function interfaceClass(spec: InterfaceSpec): ExportedClass {
  const cached = classes.get(spec.name);
  if (cached) return cached;

  class Exported extends dbus.interface.Interface {
    readonly spec = spec;
    constructor(readonly backend: InterfaceBackend) {
      super(spec.name);
    }
    emitSignal(name: string, args: unknown[]): void {
      const fn = (this as unknown as Record<string, (...a: unknown[]) => void>)[`signal$${name}`];
      if (!fn) throw new Error(`${spec.name} has no signal ${name}`);
      fn.apply(this, args);
    }
  }
  const proto = Exported.prototype as unknown as Record<string, unknown>;
  const methods: Record<string, dbus.interface.MethodOptions> = {};
  for (const m of spec.methods) {
    const key = `method$${m.name}`;
    proto[key] = function (this: Exported, ...args: unknown[]) {
      return this.backend.call(m.name, args);
    };
    methods[key] = { name: m.name, inSignature: m.in, outSignature: m.out };
  }
  const properties: Record<string, dbus.interface.PropertyOptions> = {};
  for (const p of spec.properties) {
    Object.defineProperty(Exported.prototype, p.name, {
      get(this: Exported) {
        return this.backend.get(p.name);
      },
      set(this: Exported, value: unknown) {
        void this.backend.set?.(p.name, value);
      },
      configurable: true,
    });
    properties[p.name] = { signature: p.signature, access: p.access };
  }
  const signals: Record<string, dbus.interface.SignalOptions> = {};
  for (const s of spec.signals) {
    const key = `signal$${s.name}`;
    // dbus-next emits the function's return value as the signal body.
    proto[key] = function (...args: unknown[]) {
      return args.length === 1 ? args[0] : args;
    };
    signals[key] = { name: s.name, signature: s.signature };
  }
  Exported.configureMembers({ properties, methods, signals });
  classes.set(spec.name, Exported);
  return Exported;
}

/** Creates an exported instance of `spec` delegating to `backend`. */
export function createInterface(spec: InterfaceSpec, backend: InterfaceBackend): ExportedInterface {
  const Cls = interfaceClass(spec);
  return new Cls(backend);
}

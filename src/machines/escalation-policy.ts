/**
 * A caller-owned escalation policy whose ledger outlives one connection: pass the same object to
 * every `establishConnection` for devices that share adapters, and a failure streak on hci0 seen by
 * one device counts for the next. Plain in-memory state; no I/O.
 */
import {
  assertEscalationConfig,
  decideEscalation,
  emptyLedger,
  recordFailure,
  recordReset,
  recordSuccess,
  type EscalationAction,
  type EscalationConfig,
  type EscalationLedger,
  type EscalationQuestion,
} from './escalation.js';
import type { FailureClass } from './connection-contracts.js';
import { DEFAULT_ESCALATION, ESCALATION_PROFILES, type EscalationProfileName } from './profiles.js';

/** One change to a ledger, as the connection machine reports it. */
export type LedgerChange =
  /** `failureClass` lets the ledger leave out refusals that do not count (see `countsTowardEscalation`). */
  | { readonly kind: 'failure'; readonly adapter: string; readonly failureClass?: FailureClass }
  | { readonly kind: 'success'; readonly adapter: string }
  | { readonly kind: 'reset'; readonly adapter: string; readonly at: number };

/** Shared, mutable holder of an {@link EscalationConfig} and its {@link EscalationLedger}. */
export class EscalationPolicy {
  /** The (frozen) configuration. */
  readonly config: EscalationConfig;
  #ledger: EscalationLedger = emptyLedger();

  /** @param config - a profile name, a full configuration, or overrides of the default (docs/defaults.md) */
  constructor(config: EscalationProfileName | Partial<EscalationConfig> = {}) {
    this.config = resolveEscalationConfig(config);
  }

  /** A copy of the ledger (plain data). */
  snapshot(): EscalationLedger {
    return this.#ledger;
  }

  /** Applies one change reported by a connection actor. */
  apply(change: LedgerChange): void {
    switch (change.kind) {
      case 'failure':
        this.#ledger = recordFailure(this.#ledger, change.adapter, change.failureClass);
        return;
      case 'success':
        this.#ledger = recordSuccess(this.#ledger, change.adapter);
        return;
      case 'reset':
        this.#ledger = recordReset(this.#ledger, change.adapter, change.at);
        return;
    }
  }

  /** Consecutive failures on `adapter`. */
  failureCount(adapter: string): number {
    return this.#ledger.failures[adapter] ?? 0;
  }

  /** The decision for a failure already applied to the ledger. */
  decide(question: EscalationQuestion): EscalationAction {
    return decideEscalation(this.config, this.#ledger, question);
  }
}

/**
 * A validated, frozen configuration from a profile name or a partial configuration (missing fields
 * come from the default, docs/defaults.md). Throws TypeError/RangeError naming the field.
 */
export function resolveEscalationConfig(
  value: EscalationProfileName | Partial<EscalationConfig> | undefined,
  field = 'escalation',
): EscalationConfig {
  if (value === undefined) return DEFAULT_ESCALATION;
  if (typeof value === 'string') {
    const profile = (ESCALATION_PROFILES as Record<string, EscalationConfig | undefined>)[value];
    if (profile === undefined) {
      throw new TypeError(
        `${field} must be one of ${Object.keys(ESCALATION_PROFILES).join(', ')}, a configuration or an EscalationPolicy; got "${value}"`,
      );
    }
    return profile;
  }
  if (typeof value !== 'object' || value === null) {
    throw new TypeError(`${field} must be a profile name, a configuration or an EscalationPolicy`);
  }
  const merged: EscalationConfig = Object.freeze({ ...DEFAULT_ESCALATION, ...value });
  assertEscalationConfig(merged, field);
  return merged;
}

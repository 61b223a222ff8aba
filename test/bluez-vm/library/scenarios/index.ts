/**
 * Every library scenario of the real-BlueZ tier, in run order. To add scenarios: write
 * `<concern>.ts` beside this file exporting a `LibraryScenario[]`, and add it to this list.
 */
import type { LibraryScenario } from '../types.js';
import { connectScenarios } from './connect.js';
import { lateGattScenarios } from './late-gatt.js';
import { linkLossScenarios } from './link-loss.js';
import { lockScenarios } from './locks.js';
import { restartScenarios } from './restart.js';
import { zombieScenarios } from './zombie.js';

export const LIBRARY_SCENARIOS: readonly LibraryScenario[] = [
  ...connectScenarios,
  ...lateGattScenarios,
  ...linkLossScenarios,
  ...restartScenarios,
  ...zombieScenarios,
  ...lockScenarios,
];

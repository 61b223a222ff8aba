/**
 * bluez-connection-manager: keeps BLE connections alive on Linux BlueZ.
 *
 * The public API grows issue by issue; see README.md for what is available.
 * @packageDocumentation
 */
export const VERSION = '0.1.0';

/**
 * Test support: a private dbus-daemon launcher and a BlueZ simulator that speaks
 * the real org.bluez D-Bus API, so apps can be tested without Bluetooth hardware.
 * @packageDocumentation
 */
export {};

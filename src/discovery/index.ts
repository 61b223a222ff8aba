/** Managed discovery: cache first, scan lock, shared sessions, discovery owner / listeners. */
export {
  findDevice,
  seenRecently,
  startDiscoveryOwner,
  type DiscoveryOwner,
  type FindDeviceOptions,
} from './find-device.js';
export {
  DEFAULT_DISCOVERY,
  resolveDiscoveryOptions,
  type DiscoveryEvent,
  type DiscoveryOptions,
  type ResolvedDiscovery,
} from './options.js';
export { joinDiscovery, openDiscoverySessions } from './sessions.js';

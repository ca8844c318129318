// The flow sync as the engine takes it (from config sync and the key read at start), and as status
// shows it.
import type { SyncConfig, SyncEndpoint } from "../config";
import type { NativeSyncOptions, SyncCounters } from "../native";

export function nativeSyncOptions(config: SyncConfig, key: Uint8Array): NativeSyncOptions {
  return {
    listen: { ...config.listen },
    peers: config.peers.map((p) => ({ ...p })),
    ...(config.multicast ? { multicast: { ...config.multicast } } : {}),
    key,
    refreshSeconds: config.refreshS,
  };
}

/** What `natlb status` shows of the sync (README "Flow sync" explains the counters). */
export interface SyncStatus {
  listen: string;
  peers: string[];
  multicast?: { group: string; interface: string };
  refreshS: number;
  /** Sent, received, applied, rejected and dropped by reason (native/sync/sync_counters.h). */
  counters: SyncCounters;
}

const endpointText = (e: SyncEndpoint): string => `${e.ip}:${e.port}`;

export function syncStatus(config: SyncConfig, counters: SyncCounters): SyncStatus {
  return {
    listen: endpointText(config.listen),
    peers: config.peers.map(endpointText),
    ...(config.multicast ? { multicast: { ...config.multicast } } : {}),
    refreshS: config.refreshS,
    counters,
  };
}

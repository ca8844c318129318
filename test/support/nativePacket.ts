// The native packet functions under test, typed by the contract (a compile error here means the
// addon's API drifted from what the tests check).

import { loadNative } from "../../src/native";
import type { PacketFunctions } from "./packetContract";

export function loadPacketFunctions(): PacketFunctions {
  const packet: PacketFunctions = loadNative().packet;
  return packet;
}

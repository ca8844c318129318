// ARP over Ethernet for IPv4: parse requests/replies and build requests, replies and gratuitous ARP.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>

#include "wire.h"

namespace natlb::packet {

constexpr size_t kArpFrameLength = 42;  // Ethernet 14 + ARP 28 (the NIC pads to 60)

enum class ArpOperation : uint16_t { Request = 1, Reply = 2 };

struct ArpMessage {
  ArpOperation operation;
  MacAddress senderMac;
  uint32_t senderIp;
  MacAddress targetMac;
  uint32_t targetIp;
};

std::optional<ArpMessage> parseArp(const uint8_t* frame, size_t frameLength);

// Writes a full Ethernet frame of kArpFrameLength bytes into `out`.
void buildArp(uint8_t* out, const MacAddress& ethernetDestination, const ArpMessage& message);

// The reply to `request` saying that `ourIp` is at `ourMac`.
ArpMessage arpReplyTo(const ArpMessage& request, const MacAddress& ourMac);
// Who has `targetIp`? tell `ourIp` (at `ourMac`); sent to broadcast.
ArpMessage arpRequestFor(uint32_t targetIp, uint32_t ourIp, const MacAddress& ourMac);
// Gratuitous ARP announcing `ip` at `mac` (a request with sender = target), sent to broadcast.
ArpMessage gratuitousArp(uint32_t ip, const MacAddress& mac);

constexpr MacAddress kBroadcastMac{0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

}  // namespace natlb::packet

// The control frames that renew or release one reply tuple in the kernel's list of owned replies
// (flow/reply_claims.h): the socket's mark says which, the headers carry the tuple as natlb's frames to
// the real carry it (client ip:port -> real ip:port). The kernel's egress rule drops them after use.
// Should one ever leave the host (no kernel set-up to drop it), nobody takes it: it is addressed to the
// sender's own MAC, with TTL 1 and a wrong IP header checksum, and holds a TCP header without flags (or
// a UDP header) and no payload.
#pragma once
#include <cstddef>
#include <cstdint>

#include "wire.h"

namespace natlb::packet {

constexpr size_t kClaimSignalLength = kEthernetHeaderLength + kIPv4MinHeaderLength + kTcpMinHeaderLength;

struct ReplyTuple {
  uint8_t protocol;  // kProtocolTcp or kProtocolUdp
  uint32_t realIp;
  uint16_t realPort;
  uint32_t clientIp;
  uint16_t clientPort;
};

// Writes the frame into `out` (kClaimSignalLength bytes); returns its length.
size_t buildClaimSignal(uint8_t* out, const MacAddress& ownMac, const ReplyTuple& tuple);

}  // namespace natlb::packet

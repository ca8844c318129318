// The ICMP errors natlb originates as a router (native/packet/icmp_error.h) from the offending packet's
// bytes as received. Checked from scratch:
//   - an error is built exactly when the packet has a valid IPv4 header within its bytes and is not an
//     ICMP error itself (RFC 1122), and the frame fits kIcmpErrorFrameCapacity (written to a buffer of
//     exactly that size);
//   - the frame parses as ICMP; its IP and ICMP checksums verify; it goes back to the packet's source
//     from the given address; type, code and next-hop MTU are the given ones;
//   - it quotes the packet's header and the first 8 bytes after it (fewer when the packet is short).
// Input: [type][code][next-hop MTU 2][source 4][the offending packet from its IPv4 header...].
#include <algorithm>
#include <cstring>

#include "fuzz_input.h"
#include "invariant.h"
#include "packet/icmp.h"
#include "packet/icmp_error.h"
#include "packet/wire.h"
#include "reference_checksum.h"

using namespace natlb;
using namespace natlb::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput input(data, size);
  packet::IcmpErrorSpec spec{};
  spec.type = input.byte();
  spec.code = input.byte();
  spec.nextHopMtu = input.u16();
  spec.source = input.u32();
  size_t available = input.remaining();
  const uint8_t* bytes = input.take(available);
  const ExactBuffer original(bytes, available);
  ExactBuffer out(packet::kIcmpErrorFrameCapacity);
  const size_t length = packet::buildIcmpError(out.get(), original.get(), available, spec);
  if (kMutant) {
    if (length != 0) out.get()[length - 1] ^= 0x01;  // a builder that damages the quote
  }

  const uint8_t* ip = bytes;
  const size_t headerLength = available >= 1 ? size_t(ip[0] & 0xf) * 4 : 0;
  bool expected = available >= 20 && (ip[0] >> 4) == 4 && headerLength >= 20 && headerLength <= available;
  if (expected && ip[9] == packet::kProtocolIcmp) {
    expected = available > headerLength && (ip[headerLength] == packet::kIcmpEchoRequest || ip[headerLength] == packet::kIcmpEchoReply);
  }
  require((length != 0) == expected, "an error is built exactly for a valid IPv4 header that is not an ICMP error");
  if (length == 0) return 0;
  require(length <= packet::kIcmpErrorFrameCapacity, "the error fits its buffer");

  const auto icmp = packet::parseIcmp(out.get(), length);
  require(icmp.has_value() && icmp->icmpOffset + icmp->icmpLength == length, "the error parses as an ICMP message filling the frame");
  const uint8_t* outIp = out.get() + 14;
  require(verifies(outIp, 20), "its IP checksum verifies");
  require(verifies(out.get() + icmp->icmpOffset, icmp->icmpLength), "its ICMP checksum verifies");
  require(read32(outIp + 12) == spec.source && read32(outIp + 16) == read32(ip + 12), "it goes back to the packet's source");
  const uint8_t* message = out.get() + icmp->icmpOffset;
  require(message[0] == spec.type && message[1] == spec.code && read16(message + 6) == spec.nextHopMtu,
          "type, code and next-hop MTU are the given ones");
  const size_t quoted = std::min(available, headerLength + 8);
  require(icmp->icmpLength == 8 + quoted && std::memcmp(message + 8, bytes, quoted) == 0,
          "it quotes the header and the first 8 bytes after it");
  return 0;
}

// NAT rewrite (native/packet/nat_rewrite.h) of a frame the parser accepted: destination (to a real),
// source (to the client), both (full NAT: the source gets ip:port, the destination ~ip:~port) or TTL only, with a complete or a CHECKSUM_PARTIAL checksum, frames of any
// size up to GSO super-frames. Checked from scratch on the output:
//   - the TTL went down by one, or the frame is untouched when it ran out;
//   - the IPv4 header checksum verifies;
//   - the TCP/UDP checksum's error is what it was: a complete checksum that verified still verifies
//     (and a wrong one stays exactly as wrong), a partial one still holds the new pseudo-header seed;
//     a UDP datagram without checksum keeps none, and a complete UDP checksum never becomes 0;
//   - the new address and port are in place, and no other byte changed.
// Input: [operation][ip 4][port 2][frame...]; operation bit 0-1: destination, source, TTL only, both;
// bit 2: partial checksum.
#include <cstring>

#include "changed_bytes.h"
#include "fuzz_input.h"
#include "invariant.h"
#include "packet/ipv4_frame.h"
#include "packet/nat_rewrite.h"
#include "reference_checksum.h"

using namespace natlb;
using namespace natlb::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput input(data, size);
  const uint8_t operation = input.byte();
  const uint32_t newIp = input.u32();
  const uint16_t newPort = input.u16();
  size_t frameLength = input.remaining();
  const uint8_t* bytes = input.take(frameLength);
  ExactBuffer frame(bytes, frameLength);
  const packet::ParsedFrame parsed = packet::parseIpv4Frame(frame.get(), frame.size);
  if (parsed.error != packet::ParseError::None) return 0;
  const packet::Ipv4FrameView& view = parsed.view;
  const ExactBuffer before(frame.get(), frame.size);

  const auto mode = (operation & 4) ? packet::ChecksumMode::Partial : packet::ChecksumMode::Complete;
  const int kind = operation & 3;  // 0 destination, 1 source, 2 TTL only, 3 both (full NAT)
  const uint32_t otherIp = ~newIp;
  const uint16_t otherPort = uint16_t(~newPort);
  const uint8_t* ip = before.get() + view.l3Offset;
  const uint8_t* l4 = before.get() + view.l4Offset;
  const size_t checkOffset = view.checksumOffset();
  const uint32_t checkBefore = read16(before.get() + checkOffset);
  // The checksum's error before: complete, what the whole segment sums to; partial, how far the
  // field is from the pseudo-header sum.
  const uint32_t completeError = transportResidual(ip, l4, view.l4Length);
  const uint32_t partialError = onesSubtract(checkBefore, pseudoHeaderSum(ip, view.l4Length));

  packet::RewriteError error;
  if (kind == 0) {
    error = packet::rewriteDestination(view, newIp, newPort, mode);
  } else if (kind == 1) {
    error = packet::rewriteSource(view, newIp, newPort, mode);
  } else if (kind == 3) {
    error = packet::rewriteBoth(view, newIp, newPort, otherIp, otherPort, mode);
  } else {
    error = packet::decrementTtl(view);
  }
  if (kMutant) {
    if (error == packet::RewriteError::None) frame.get()[frame.size - 1] ^= 0x01;  // a rewrite that corrupts the frame's last byte
  }

  const uint8_t* out = frame.get();
  if (error == packet::RewriteError::TtlExpired) {
    require(ip[8] <= 1, "a rewrite refuses only an expiring TTL");
    require(std::memcmp(out, before.get(), frame.size) == 0, "a refused rewrite leaves the frame untouched");
    return 0;
  }
  require(error == packet::RewriteError::None, "a rewrite either succeeds or reports the TTL");
  const uint8_t* outIp = out + view.l3Offset;
  const uint8_t* outL4 = out + view.l4Offset;
  require(outIp[8] == ip[8] - 1, "the TTL went down by one");
  require(verifies(outIp, view.l4Offset - view.l3Offset), "the IPv4 header checksum verifies");

  AllowedChanges allowed(frame.size);
  allowed.allow(view.l3Offset + 8, 1);   // TTL
  allowed.allow(view.l3Offset + 10, 2);  // header checksum
  if (kind != 2) {
    const size_t ipField = view.l3Offset + (kind == 0 ? 16 : 12);
    const size_t portField = view.l4Offset + (kind == 0 ? 2 : 0);
    require(read32(out + ipField) == newIp, "the new address is in place");
    require(read16(out + portField) == newPort, "the new port is in place");
    allowed.allow(ipField, 4);
    allowed.allow(portField, 2);
    if (kind == 3) {
      require(read32(out + view.l3Offset + 16) == otherIp, "full NAT: the new destination address is in place");
      require(read16(out + view.l4Offset + 2) == otherPort, "full NAT: the new destination port is in place");
      allowed.allow(view.l3Offset + 16, 4);
      allowed.allow(view.l4Offset + 2, 2);
    }
    allowed.allow(checkOffset, 2);
    const uint32_t checkAfter = read16(out + checkOffset);
    if (view.protocol == packet::kProtocolUdp && checkBefore == 0) {
      require(checkAfter == 0, "a UDP datagram without checksum keeps none");
    } else if (mode == packet::ChecksumMode::Complete) {
      require(transportResidual(outIp, outL4, view.l4Length) == completeError,
              "a complete checksum is exactly as right (or wrong) as before");
      if (view.protocol == packet::kProtocolUdp) require(checkAfter != 0, "a complete UDP checksum never becomes 0 (RFC 768)");
    } else {
      require(onesSubtract(checkAfter, pseudoHeaderSum(outIp, view.l4Length)) == partialError,
              "a partial checksum still holds the pseudo-header seed (or is as far from it as before)");
    }
  }
  allowed.requireOthersUnchanged(before.get(), out, "no byte outside the rewritten fields changed");
  return 0;
}

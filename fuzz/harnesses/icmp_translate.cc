// ICMP for the VIPs (native/packet/icmp.h): parsing, echo replies, and the translation of ICMP errors
// that quote a NAT flow's packet. Checked from scratch on the output:
//   - the ICMP view and the quoted packet's offsets lie within the frame and the ICMP message;
//   - an echo reply: addresses swapped, type 0, TTL 64, both checksums verify, nothing else changed;
//   - a translated error: the TTL went down by one (or nothing changed when it ran out), the outer
//     and the quoted IP checksums and the ICMP checksum verify, the new addresses and port are in
//     place, the quoted TCP/UDP checksum (when the quote holds it) changed by exactly what the new
//     address and port change, a quoted UDP checksum of 0 stays 0, no other byte changed, and the
//     output parses again to the same quoted packet with the new values.
// Input: [flags][outer source 4][outer destination 4][ip 4][port 2][frame...]; flags bit 0: the
// quoted side is the source.
#include <cstring>

#include "changed_bytes.h"
#include "fuzz_input.h"
#include "invariant.h"
#include "packet/icmp.h"
#include "packet/wire.h"
#include "reference_checksum.h"

using namespace natlb;
using namespace natlb::fuzz;

namespace {

void checkEchoReply(const packet::IcmpView& icmp, const ExactBuffer& frame) {
  const ExactBuffer before(frame.get(), frame.size);
  packet::turnIntoEchoReply(icmp);
  const uint8_t* ip = frame.get() + icmp.l3Offset;
  const uint8_t* oldIp = before.get() + icmp.l3Offset;
  const size_t headerLength = icmp.icmpOffset - icmp.l3Offset;
  require(read32(ip + 12) == read32(oldIp + 16) && read32(ip + 16) == read32(oldIp + 12), "an echo reply swaps the addresses");
  require(ip[8] == 64 && frame.get()[icmp.icmpOffset] == packet::kIcmpEchoReply, "an echo reply has TTL 64 and type 0");
  require(verifies(ip, headerLength), "an echo reply's IP checksum verifies");
  require(verifies(frame.get() + icmp.icmpOffset, icmp.icmpLength), "an echo reply's ICMP checksum verifies");
  AllowedChanges allowed(frame.size);
  allowed.allow(icmp.l3Offset + 8, 1);
  allowed.allow(icmp.l3Offset + 10, 10);  // checksum, both addresses
  allowed.allow(icmp.icmpOffset, 1);
  allowed.allow(icmp.icmpOffset + 2, 2);
  allowed.requireOthersUnchanged(before.get(), frame.get(), "an echo reply changes only addresses, TTL, type and checksums");
}

void checkTranslation(const packet::IcmpView& icmp, const ExactBuffer& frame, const packet::IcmpTranslation& translation) {
  const auto quoted = packet::quotedPacket(icmp);
  if (!quoted) return;
  const size_t messageEnd = icmp.icmpOffset + icmp.icmpLength;
  require(quoted->l3Offset == icmp.icmpOffset + 8 && quoted->l4Offset >= quoted->l3Offset + 20 && quoted->l4Offset + 8 <= messageEnd,
          "the quoted header and its first 8 bytes lie within the ICMP message");
  require(quoted->protocol == packet::kProtocolTcp || quoted->protocol == packet::kProtocolUdp, "the quote is of TCP or UDP");
  const ExactBuffer before(frame.get(), frame.size);
  const uint8_t* oldIp = before.get() + icmp.l3Offset;
  const bool translated = packet::translateIcmpError(icmp, *quoted, translation);
  if (kMutant) {
    if (translated) frame.get()[quoted->l3Offset + 8] ^= 0x01;  // a translation that damages the quoted TTL
  }
  if (!translated) {
    require(oldIp[8] <= 1, "a translation refuses only an expiring TTL");
    require(std::memcmp(before.get(), frame.get(), frame.size) == 0, "a refused translation changes nothing");
    return;
  }
  const uint8_t* ip = frame.get() + icmp.l3Offset;
  const bool source = translation.side == packet::QuotedSide::Source;
  require(ip[8] == oldIp[8] - 1, "the TTL went down by one");
  require(verifies(ip, icmp.icmpOffset - icmp.l3Offset), "the outer IP checksum verifies");
  require(verifies(frame.get() + icmp.icmpOffset, icmp.icmpLength), "the ICMP checksum verifies");
  require(verifies(frame.get() + quoted->l3Offset, quoted->l4Offset - quoted->l3Offset), "the quoted IP checksum verifies");
  if (translation.outerSource != 0) require(read32(ip + 12) == translation.outerSource, "the outer source is the new one");
  if (translation.outerDestination != 0) require(read32(ip + 16) == translation.outerDestination, "the outer destination is the new one");
  const size_t addressField = quoted->l3Offset + (source ? 12 : 16);
  const size_t portField = quoted->l4Offset + (source ? 0 : 2);
  require(read32(frame.get() + addressField) == translation.ip && read16(frame.get() + portField) == translation.port,
          "the quoted address and port are the new ones");

  AllowedChanges allowed(frame.size);
  allowed.allow(icmp.l3Offset + 8, 1);
  allowed.allow(icmp.l3Offset + 10, 2);
  if (translation.outerSource != 0) allowed.allow(icmp.l3Offset + 12, 4);
  if (translation.outerDestination != 0) allowed.allow(icmp.l3Offset + 16, 4);
  allowed.allow(icmp.icmpOffset + 2, 2);
  allowed.allow(quoted->l3Offset + 10, 2);
  allowed.allow(addressField, 4);
  allowed.allow(portField, 2);
  const size_t checkField = quoted->l4Offset + (quoted->protocol == packet::kProtocolTcp ? 16 : 6);
  if (checkField + 2 <= messageEnd) {
    allowed.allow(checkField, 2);
    const uint32_t oldCheck = read16(before.get() + checkField), newCheck = read16(frame.get() + checkField);
    if (quoted->protocol == packet::kProtocolUdp && oldCheck == 0) {
      require(newCheck == 0, "a quoted UDP checksum of 0 stays 0");
    } else {
      // The checksum plus the fields it covers that changed adds up to what it did before.
      const uint32_t oldSum = onesAdd(onesAdd(oldCheck, onesOf32(read32(before.get() + addressField))), read16(before.get() + portField));
      const uint32_t newSum = onesAdd(onesAdd(newCheck, onesOf32(translation.ip)), translation.port);
      require(oldSum == newSum, "the quoted checksum changed by exactly what the address and port changed");
    }
  }
  allowed.requireOthersUnchanged(before.get(), frame.get(), "a translation changes only its fields");

  const auto again = packet::parseIcmp(frame.get(), frame.size);
  require(again.has_value() && again->icmpLength == icmp.icmpLength, "the translated error parses again");
  const auto quotedAgain = packet::quotedPacket(*again);
  require(quotedAgain.has_value() && (source ? quotedAgain->source : quotedAgain->destination) == translation.ip &&
              (source ? quotedAgain->sourcePort : quotedAgain->destinationPort) == translation.port,
          "the translated error quotes the new address and port");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput input(data, size);
  const uint8_t flags = input.byte();
  packet::IcmpTranslation translation{};
  translation.outerSource = input.u32();
  translation.outerDestination = input.u32();
  translation.side = (flags & 1) ? packet::QuotedSide::Source : packet::QuotedSide::Destination;
  translation.ip = input.u32();
  translation.port = input.u16();
  size_t frameLength = input.remaining();
  const uint8_t* bytes = input.take(frameLength);
  ExactBuffer frame(bytes, frameLength);

  const auto icmp = packet::parseIcmp(frame.get(), frame.size);
  if (!icmp) return 0;
  require(icmp->frame == frame.get() && icmp->l3Offset == 14 && icmp->icmpOffset >= 34 && icmp->icmpLength >= 8 &&
              icmp->icmpOffset + icmp->icmpLength <= frame.size,
          "the ICMP message lies within the frame");
  require(icmp->type == frame.get()[icmp->icmpOffset] && icmp->code == frame.get()[icmp->icmpOffset + 1], "type and code are the message's");
  if (icmp->type == packet::kIcmpEchoRequest) {
    checkEchoReply(*icmp, frame);
  } else if (packet::isIcmpError(icmp->type)) {
    checkTranslation(*icmp, frame, translation);
  }
  return 0;
}

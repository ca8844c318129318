// ICMP for the VIPs (IPv4), pure functions over one frame:
// - echo requests to a VIP are answered by the balancer (a kernel-IPVS VIP is a local address and
//   answers ping; natlb's VIP is not, so the data plane does it);
// - ICMP errors sent to a VIP quote a packet natlb sent (VIP:vport -> client). They are translated
//   for the real server that owns the flow (IPVS ip_vs_in_icmp), so path-MTU discovery and
//   unreachable errors reach it: without that, large transfers stall behind a smaller-MTU link.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>

namespace natlb::packet {

constexpr uint8_t kIcmpEchoReply = 0;
constexpr uint8_t kIcmpDestinationUnreachable = 3;
constexpr uint8_t kIcmpEchoRequest = 8;
constexpr uint8_t kIcmpTimeExceeded = 11;
constexpr uint8_t kIcmpParameterProblem = 12;

struct IcmpView {
  uint8_t* frame;
  size_t l3Offset;
  size_t icmpOffset;
  size_t icmpLength;  // from the IPv4 total length
  uint8_t type;
  uint8_t code;
};

// An unfragmented IPv4 ICMP message with at least its 8-byte header, or nullopt.
std::optional<IcmpView> parseIcmp(uint8_t* frame, size_t frameLength);

// Turns an echo request into its reply in place: addresses swapped, type 0, fresh TTL, checksums.
// Ethernet addresses are left to the caller.
void turnIntoEchoReply(const IcmpView& icmp);

// The transport packet an ICMP error quotes (its IPv4 header and first 8+ bytes).
struct QuotedPacket {
  size_t l3Offset;  // of the quoted IPv4 header, in the frame
  size_t l4Offset;
  uint8_t protocol;
  uint32_t source;
  uint32_t destination;
  uint16_t sourcePort;
  uint16_t destinationPort;
};

bool isIcmpError(uint8_t type);
std::optional<QuotedPacket> quotedPacket(const IcmpView& icmp);

// Rewrites an ICMP error about a packet VIP:vport -> client into one about RIP:rport -> client,
// sent to RIP: outer destination, quoted source address and port, the quoted IP checksum (and UDP
// checksum when quoted), the ICMP checksum and the outer IP checksum. Decrements the TTL; false when
// it expired (nothing changed).
bool translateIcmpErrorToReal(const IcmpView& icmp, const QuotedPacket& quoted, uint32_t realIp, uint16_t realPort);

}  // namespace natlb::packet

// ICMP for the VIPs (IPv4), pure functions over one frame:
// - echo requests to a VIP are answered by the balancer (a kernel-IPVS VIP is a local address and
//   answers ping; natlb's VIP is not, so the data plane does it);
// - ICMP errors about a flow's packets are translated for the other side (IPVS ip_vs_in_icmp and
//   ip_vs_out_icmp), so path-MTU discovery and unreachable errors work through the balancer: without
//   that, large transfers stall behind a smaller-MTU link.
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

enum class QuotedSide : uint8_t { Source, Destination };

// How to translate an ICMP error that quotes a NAT flow's packet:
// - to a real server (an error a router on the client's path sent to the VIP): outer destination
//   VIP -> RIP, quoted source VIP:vport -> RIP:rport;
// - to the client (an error from the backend side about client -> RIP:rport): outer source RIP -> VIP
//   when the real itself sent it, quoted destination RIP:rport -> VIP:vport.
// A full-NAT flow's errors change both quoted endpoints: `otherIp`:`otherPort` goes to the side
// opposite `side` (0: that side unchanged, as for NAT).
struct IcmpTranslation {
  uint32_t outerSource;       // 0: unchanged
  uint32_t outerDestination;  // 0: unchanged
  QuotedSide side;
  uint32_t ip;
  uint16_t port;
  uint32_t otherIp = 0;
  uint16_t otherPort = 0;
};

// Rewrites the addresses, the quoted IP checksum (and the quoted L4 checksum when quoted), the ICMP
// checksum and the outer IP checksum; decrements the TTL. False when the TTL expired (nothing changed).
bool translateIcmpError(const IcmpView& icmp, const QuotedPacket& quoted, const IcmpTranslation& translation);

}  // namespace natlb::packet

// LVS-NAT rewrites of one parsed frame, in place: the destination on the way to a real server, the
// source on the way back to the client. Both decrement the TTL; IP, TCP and UDP checksums stay right.
#pragma once
#include <cstdint>
#include <string_view>

#include "ipv4_frame.h"

namespace natlb::packet {

// How the L4 checksum field of the received frame is to be read (docs/architecture.md, "Checksums"):
// Complete: a finished checksum, updated per RFC 1624 (addresses and ports);
// Partial: CHECKSUM_PARTIAL, the field is the pseudo-header seed (addresses only, not complemented).
enum class ChecksumMode : uint8_t { Complete, Partial };

enum class RewriteError : uint8_t { None, TtlExpired };

std::string_view describe(RewriteError error);

// VIP:vport -> RIP:rport on a client's frame.
RewriteError rewriteDestination(const Ipv4FrameView& view, uint32_t ip, uint16_t port, ChecksumMode mode);
// RIP:rport -> VIP:vport on a real server's reply.
RewriteError rewriteSource(const Ipv4FrameView& view, uint32_t ip, uint16_t port, ChecksumMode mode);
// Full NAT: both endpoints at once (one TTL decrement), client:cport -> VIP:vport becoming
// local:lport -> RIP:rport towards the real, RIP:rport -> local:lport becoming VIP:vport -> client:cport back.
RewriteError rewriteBoth(const Ipv4FrameView& view, uint32_t sourceIp, uint16_t sourcePort, uint32_t destinationIp,
                         uint16_t destinationPort, ChecksumMode mode);
// Forwarding without NAT (replies the kernel no longer forwards): TTL only.
RewriteError decrementTtl(const Ipv4FrameView& view);

// A later fragment (no L4 header) of a datagram whose first fragment was rewritten: only the address
// changes; the L4 checksum, in the first fragment, already accounts for it. `frame` is an IPv4 frame
// the caller checked (header length within the frame).
enum class AddressField : uint8_t { Source, Destination };
RewriteError rewriteFragmentAddress(uint8_t* frame, AddressField field, uint32_t ip);
// The same for a full-NAT datagram: both addresses.
RewriteError rewriteFragmentAddresses(uint8_t* frame, uint32_t source, uint32_t destination);

}  // namespace natlb::packet

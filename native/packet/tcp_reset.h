// A TCP reset that natlb originates for one side of a connection it ends (config deadRealFlows
// "reset": the real went down or was removed). Pure: builds the frame from the tuple and the sequence
// number the receiver expects next, so the reset is an exact match (RFC 5961) and takes at once.
#pragma once
#include <cstddef>
#include <cstdint>

#include "wire.h"

namespace natlb::packet {

constexpr size_t kTcpResetFrameLength = kEthernetHeaderLength + kIPv4MinHeaderLength + kTcpMinHeaderLength;

struct TcpResetSpec {
  uint32_t sourceIp;
  uint16_t sourcePort;
  uint32_t destinationIp;
  uint16_t destinationPort;
  uint32_t sequence;  // what the receiver expects next from this side
};

// Writes the Ethernet frame (MAC addresses left zero for the sender) into `out`; returns its length.
size_t buildTcpReset(uint8_t* out, const TcpResetSpec& spec);

}  // namespace natlb::packet

#include "arp.h"

#include <cstring>

namespace natlb::packet {

std::optional<ArpMessage> parseArp(const uint8_t* frame, size_t frameLength) {
  if (frameLength < kArpFrameLength || load16(frame + 12) != kEtherTypeArp) return std::nullopt;
  const uint8_t* arp = frame + kEthernetHeaderLength;
  // Ethernet hardware (1), IPv4 protocol, 6-byte and 4-byte addresses.
  if (load16(arp) != 1 || load16(arp + 2) != kEtherTypeIPv4 || arp[4] != 6 || arp[5] != 4) {
    return std::nullopt;
  }
  const uint16_t operation = load16(arp + 6);
  if (operation != 1 && operation != 2) return std::nullopt;
  ArpMessage message{};
  message.operation = static_cast<ArpOperation>(operation);
  std::memcpy(message.senderMac.data(), arp + 8, 6);
  message.senderIp = load32(arp + 14);
  std::memcpy(message.targetMac.data(), arp + 18, 6);
  message.targetIp = load32(arp + 24);
  return message;
}

void buildArp(uint8_t* out, const MacAddress& ethernetDestination, const ArpMessage& message) {
  std::memcpy(out, ethernetDestination.data(), 6);
  std::memcpy(out + 6, message.senderMac.data(), 6);
  store16(out + 12, kEtherTypeArp);
  uint8_t* arp = out + kEthernetHeaderLength;
  store16(arp, 1);
  store16(arp + 2, kEtherTypeIPv4);
  arp[4] = 6;
  arp[5] = 4;
  store16(arp + 6, static_cast<uint16_t>(message.operation));
  std::memcpy(arp + 8, message.senderMac.data(), 6);
  store32(arp + 14, message.senderIp);
  std::memcpy(arp + 18, message.targetMac.data(), 6);
  store32(arp + 24, message.targetIp);
}

ArpMessage arpReplyTo(const ArpMessage& request, const MacAddress& ourMac) {
  return ArpMessage{ArpOperation::Reply, ourMac, request.targetIp, request.senderMac, request.senderIp};
}

ArpMessage arpRequestFor(uint32_t targetIp, uint32_t ourIp, const MacAddress& ourMac) {
  return ArpMessage{ArpOperation::Request, ourMac, ourIp, MacAddress{}, targetIp};
}

ArpMessage gratuitousArp(uint32_t ip, const MacAddress& mac) {
  return ArpMessage{ArpOperation::Request, mac, ip, MacAddress{}, ip};
}

}  // namespace natlb::packet

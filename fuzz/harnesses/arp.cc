// ARP (native/packet/arp.h): parsing, and the reply built from what was parsed. Checked:
//   - a frame is accepted exactly when it is an Ethernet/IPv4 ARP request or reply of full length,
//     and the message's fields are the frame's bytes; the frame is not written to;
//   - the reply, built into a buffer of exactly kArpFrameLength bytes, parses back to the reply:
//     operation 2, our address as the sender, the asker as the target, sent to the asker.
// Input: [our MAC 6][frame...].
#include <cstring>

#include "fuzz_input.h"
#include "invariant.h"
#include "packet/arp.h"
#include "reference_checksum.h"

using namespace natlb;
using namespace natlb::fuzz;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput input(data, size);
  packet::MacAddress ourMac{};
  for (auto& b : ourMac) b = input.byte();
  size_t frameLength = input.remaining();
  const uint8_t* bytes = input.take(frameLength);
  const ExactBuffer frame(bytes, frameLength);

  const auto message = packet::parseArp(frame.get(), frame.size);
  const uint8_t* arp = bytes + 14;
  const bool expected = frameLength >= 42 && read16(bytes + 12) == 0x0806 && read16(arp) == 1 && read16(arp + 2) == 0x0800 &&
                        arp[4] == 6 && arp[5] == 4 && (read16(arp + 6) == 1 || read16(arp + 6) == 2);
  require(message.has_value() == expected, "a frame is accepted exactly when it is an Ethernet/IPv4 ARP request or reply");
  require(std::memcmp(frame.get(), bytes, frameLength) == 0, "parsing does not write to the frame");
  if (!message) return 0;
  require(uint16_t(message->operation) == read16(arp + 6) && std::memcmp(message->senderMac.data(), arp + 8, 6) == 0 &&
              message->senderIp == read32(arp + 14) && std::memcmp(message->targetMac.data(), arp + 18, 6) == 0 &&
              message->targetIp == read32(arp + 24),
          "the message's fields are the frame's bytes");

  ExactBuffer reply(packet::kArpFrameLength);
  packet::buildArp(reply.get(), message->senderMac, packet::arpReplyTo(*message, ourMac));
  if (kMutant) reply.get()[packet::kArpFrameLength - 1] ^= 0x01;  // a builder that damages the target address
  const auto parsedReply = packet::parseArp(reply.get(), reply.size);
  require(parsedReply.has_value(), "the reply parses");
  require(parsedReply->operation == packet::ArpOperation::Reply && parsedReply->senderMac == ourMac &&
              parsedReply->senderIp == message->targetIp && parsedReply->targetMac == message->senderMac &&
              parsedReply->targetIp == message->senderIp,
          "the reply says the asked address is at our MAC, to the asker");
  require(std::memcmp(reply.get(), message->senderMac.data(), 6) == 0 && std::memcmp(reply.get() + 6, ourMac.data(), 6) == 0,
          "the reply goes from our MAC to the asker's");
  return 0;
}

// Segment coalescing (native/packet/tcp_coalesce.h), grouped the way the transmit path does
// (io/frame_sender.cc): each frame that is a coalescible segment joins the group when canAppend says
// so, else it starts the next one. Every group of two or more is built into a GSO super-frame, and
// checked by segmenting it again the way the kernel's TCP GSO does (payload cut at gso_size, sequence
// advanced by the bytes before, IP id + 1 per segment, PSH only on the last): each rebuilt segment
// must be its input frame, byte for byte, apart from the IP and TCP checksum fields (the kernel
// computes both). Also: the super-frame's IP checksum verifies, its TCP field is the seed of its
// pseudo header, the virtio-net header describes it, and the header-only build agrees.
// Input: frames, each as [length 2][virtio-net flags 1][frame...].
#include <cstring>
#include <vector>

#include "fuzz_input.h"
#include "invariant.h"
#include "packet/tcp_coalesce.h"
#include "reference_checksum.h"

using namespace natlb;
using namespace natlb::fuzz;

namespace {

constexpr size_t kMaxFrames = 64;

void checkGroup(const std::vector<packet::TcpSegment>& group, const std::vector<const ExactBuffer*>& frames) {
  size_t payload = 0;
  for (const auto& s : group) payload += s.payloadLength;
  const size_t headerLength = group[0].headerLength;
  ExactBuffer super(headerLength + payload);
  io::VirtioNetHeader vnet{};
  const size_t length = packet::buildSuperFrame(group.data(), group.size(), super.get(), vnet);
  if (kMutant) super.get()[super.size - 1] ^= 0x80;  // a merge that damages the last payload byte
  require(length == super.size, "the super-frame is the headers plus every payload");
  ExactBuffer headerOnly(headerLength);
  io::VirtioNetHeader headerVnet{};
  require(packet::buildSuperFrameHeader(group.data(), group.size(), headerOnly.get(), headerVnet) == length,
          "the header-only build gives the same length");
  require(std::memcmp(headerOnly.get(), super.get(), headerLength) == 0 && std::memcmp(&headerVnet, &vnet, sizeof vnet) == 0,
          "the header-only build gives the same headers");

  const uint8_t* ip = super.get() + 14;
  require(read16(ip + 2) == length - 14, "the IP total length is the super-frame's");
  require(verifies(ip, 20), "the super-frame's IP header checksum verifies");
  require(read16(ip + 36) == seedValue(ip, length - 34), "the TCP field holds the super-frame's pseudo-header seed");
  require(vnet.flags == io::kVnetNeedsChecksum && vnet.gsoType == 1 && vnet.headerLength == headerLength &&
              vnet.gsoSize == group[0].payloadLength && vnet.checksumStart == 34 && vnet.checksumOffset == 16,
          "the virtio-net header describes a TCPv4 GSO frame with a partial checksum");

  // Segment it again, as GSO does, and compare with the inputs.
  size_t at = headerLength;
  const uint32_t firstSequence = read32(super.get() + 38);
  const uint16_t firstId = uint16_t(read16(ip + 4));
  for (size_t i = 0; i < group.size(); ++i) {
    const size_t segmentPayload = i + 1 < group.size() ? vnet.gsoSize : length - at;
    require(at + segmentPayload <= length, "the super-frame holds every segment's payload");
    std::vector<uint8_t> rebuilt(super.get(), super.get() + headerLength);
    rebuilt.insert(rebuilt.end(), super.get() + at, super.get() + at + segmentPayload);
    const uint32_t ipLength = uint32_t(headerLength - 14 + segmentPayload);
    rebuilt[16] = uint8_t(ipLength >> 8);
    rebuilt[17] = uint8_t(ipLength);
    const uint16_t id = uint16_t(firstId + i);
    rebuilt[18] = uint8_t(id >> 8);
    rebuilt[19] = uint8_t(id);
    const uint32_t sequence = firstSequence + uint32_t(at - headerLength);
    for (int b = 0; b < 4; ++b) rebuilt[38 + b] = uint8_t(sequence >> (24 - 8 * b));
    if (i + 1 < group.size()) rebuilt[47] &= uint8_t(~0x08);  // PSH (and FIN) only on the last
    const ExactBuffer& original = *frames[i];
    require(rebuilt.size() == original.size, "a re-segmented frame is as long as its input");
    for (size_t b = 0; b < rebuilt.size(); ++b) {
      if (b == 24 || b == 25 || b == 50 || b == 51) continue;  // IP and TCP checksums: GSO's to compute
      require(rebuilt[b] == original.get()[b], "the super-frame re-segments to exactly the input frames");
    }
    at += segmentPayload;
  }
  require(at == length, "nothing follows the last segment");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput input(data, size);
  std::vector<ExactBuffer> frames;
  std::vector<uint8_t> flags;
  frames.reserve(kMaxFrames);
  while (input.remaining() > 0 && frames.size() < kMaxFrames) {
    size_t length = input.u16();
    const uint8_t vnetFlags = input.byte();
    const uint8_t* bytes = input.take(length);
    frames.emplace_back(bytes, length);
    flags.push_back(vnetFlags);
  }

  std::vector<packet::TcpSegment> group;
  std::vector<const ExactBuffer*> groupFrames;
  size_t groupPayload = 0;
  auto finish = [&] {
    if (group.size() >= 2) checkGroup(group, groupFrames);
    group.clear();
    groupFrames.clear();
    groupPayload = 0;
  };
  for (size_t i = 0; i < frames.size(); ++i) {
    io::VirtioNetHeader vnet{};
    vnet.flags = flags[i] & 3;
    vnet.gsoType = flags[i] >> 7;
    const auto segment = packet::coalescibleSegment(frames[i].get(), frames[i].size, vnet);
    if (!segment) {
      finish();
      continue;
    }
    require(segment->frame == frames[i].get() && segment->headerLength + segment->payloadLength == frames[i].size &&
                segment->payloadLength > 0 && segment->headerLength >= 54 && frames[i].size <= packet::kMaxCoalescedSegmentFrame,
            "a coalescible segment is a whole frame with headers and payload");
    require((vnet.flags & io::kVnetNeedsChecksum) && vnet.gsoType == 0, "only a partial-checksum, non-GSO frame is coalesced");
    if (!group.empty() && !packet::canAppend(group.front(), group.back(), *segment, group.size(), groupPayload)) finish();
    group.push_back(*segment);
    groupFrames.push_back(&frames[i]);
    groupPayload += segment->payloadLength;
  }
  finish();
  return 0;
}

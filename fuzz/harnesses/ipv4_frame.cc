// Frame parsing (native/packet/ipv4_frame.h) and what reads the parsed view: the checksum-state probe
// (checksum_state.h) and the TCP header reader (tcp_header.h). Checked against a reference reading of
// RFC 791/793 written here:
//   - the parser accepts exactly the frames the reference accepts, and its offsets match: every
//     offset and length it returns lies within the frame (the L4 header and checksum field included);
//   - the frame is not written to;
//   - a partial checksum is reported exactly when the field holds the pseudo-header seed, and where
//     it says the checksum goes lies within the segment;
//   - the TCP fields are the header's bytes, the payload length is what follows the header, and a
//     window-scale shift is 0..14 and read only from a SYN.
// Input: the frame.
#include <cstring>

#include "fuzz_input.h"
#include "invariant.h"
#include "packet/checksum_state.h"
#include "packet/ipv4_frame.h"
#include "packet/tcp_header.h"
#include "reference_checksum.h"

using namespace natlb;
using namespace natlb::fuzz;

namespace {

struct Expected {
  bool accepted;
  size_t l4Offset;
  size_t l4Length;
};

bool optionsFit(const uint8_t* options, size_t length) {
  size_t i = 0;
  while (i < length) {
    if (options[i] == 0) return true;  // end of list
    if (options[i] == 1) {             // no-operation
      i += 1;
      continue;
    }
    if (length - i < 2 || options[i + 1] < 2 || options[i + 1] > length - i) return false;
    i += options[i + 1];
  }
  return true;
}

Expected reference(const uint8_t* f, size_t n) {
  const Expected refused{false, 0, 0};
  if (n < 34 || read16(f + 12) != 0x0800 || (f[14] >> 4) != 4) return refused;
  const size_t ihl = size_t(f[14] & 0xf) * 4;
  const size_t total = read16(f + 16);
  if (ihl < 20 || total < ihl || total > n - 14 || !optionsFit(f + 34, ihl - 20)) return refused;
  if ((read16(f + 20) & 0x1fff) != 0) return refused;
  const uint8_t protocol = f[23];
  const size_t l4Length = total - ihl;
  if (protocol == 17) return l4Length >= 8 ? Expected{true, 14 + ihl, l4Length} : refused;
  if (protocol != 6 || l4Length < 20) return refused;
  const size_t dataOffset = size_t(f[14 + ihl + 12] >> 4) * 4;
  return dataOffset >= 20 && dataOffset <= l4Length ? Expected{true, 14 + ihl, l4Length} : refused;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ExactBuffer frame(data, size);
  const packet::ParsedFrame parsed = packet::parseIpv4Frame(frame.get(), frame.size);
  const Expected expected = reference(data, size);
  const bool accepted = parsed.error == packet::ParseError::None;
  require(accepted == expected.accepted, "the parser accepts exactly the well-formed TCP/UDP frames");
  require(std::memcmp(frame.get(), data, size) == 0, "parsing does not write to the frame");
  if (!accepted) return 0;

  packet::Ipv4FrameView view = parsed.view;
  if (kMutant) view.l4Length += 1;  // a parser that counts one byte too many
  require(view.frame == frame.get() && view.frameLength == size, "the view is of this frame");
  require(view.l3Offset == 14 && view.l4Offset == expected.l4Offset && view.l4Length == expected.l4Length,
          "the offsets are the headers' own");
  require(view.l4Offset + view.l4Length <= size, "the segment lies within the frame");
  require(view.checksumOffset() + 2 <= view.l4Offset + view.l4Length, "the checksum field lies within the segment");
  require(view.protocol == data[23], "the protocol is the header's");

  const uint8_t* ip = data + 14;
  const uint32_t field = read16(data + view.checksumOffset());
  const bool firstFragment = (ip[6] & 0x20) != 0;
  const bool udpWithout = view.protocol == 17 && field == 0;
  const bool holdsSeed = !firstFragment && !udpWithout && field == seedValue(ip, view.l4Length);
  const auto partial = packet::partialChecksumOf(view);
  require(partial.has_value() == holdsSeed, "a partial checksum is reported exactly when the field holds the seed");
  if (partial) {
    require(partial->start == view.l4Offset && size_t(partial->start) + partial->offset + 2 <= view.l4Offset + view.l4Length,
            "the partial checksum's place is the segment's checksum field");
  }

  const auto tcp = packet::readTcpHeader(view);
  require(tcp.has_value() == (view.protocol == 6), "every accepted TCP frame has a readable header");
  if (tcp) {
    const uint8_t* l4 = data + view.l4Offset;
    const size_t headerLength = size_t(l4[12] >> 4) * 4;
    require(tcp->sequence == read32(l4 + 4) && tcp->acknowledgement == read32(l4 + 8) && tcp->window == read16(l4 + 14) &&
                tcp->flags == l4[13],
            "the TCP fields are the header's bytes");
    require(tcp->payloadLength == view.l4Length - headerLength, "the payload is what follows the TCP header");
    require(tcp->windowScale == packet::kNoWindowScaleOption || (tcp->windowScale <= 14 && (tcp->flags & packet::kTcpSyn)),
            "a window-scale shift is 0..14, read from a SYN");
  }
  require(std::memcmp(frame.get(), data, size) == 0, "reading the view does not write to the frame");
  return 0;
}

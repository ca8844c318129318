#include "socket_filter.h"

#include <sys/socket.h>

#include "system_error.h"

namespace natlb::io {

namespace {

constexpr uint32_t kAcceptWhole = 0x40000;  // more than any frame, including 64 KB GSO frames

// Emits "if A == value goto accept" as jeq + ja, so jumps stay within reach however long the list.
class ProgramBuilder {
 public:
  void add(uint16_t code, uint32_t k, uint8_t jt = 0, uint8_t jf = 0) { program_.push_back({code, jt, jf, k}); }
  void jumpToAcceptIfEqual(uint32_t value) {
    add(BPF_JMP | BPF_JEQ | BPF_K, value, 0, 1);
    acceptJumps_.push_back(program_.size());
    add(BPF_JMP | BPF_JA, 0);
  }
  void jumpToLabelIfNotEqual(uint32_t value, size_t& fixup) {
    add(BPF_JMP | BPF_JEQ | BPF_K, value, 1, 0);
    fixup = program_.size();
    add(BPF_JMP | BPF_JA, 0);
  }
  void bindLabelHere(size_t fixup) { program_[fixup].k = uint32_t(program_.size() - fixup - 1); }
  std::vector<sock_filter> finish() {
    add(BPF_RET | BPF_K, 0);  // drop
    const size_t accept = program_.size();
    add(BPF_RET | BPF_K, kAcceptWhole);
    for (size_t jump : acceptJumps_) program_[jump].k = uint32_t(accept - jump - 1);
    return std::move(program_);
  }

 private:
  std::vector<sock_filter> program_;
  std::vector<size_t> acceptJumps_;
};

}  // namespace

std::vector<sock_filter> buildSocketFilter(const FilterSpec& spec) {
  ProgramBuilder b;
  b.add(BPF_LD | BPF_H | BPF_ABS, 12);  // ethertype
  if (spec.acceptArp) b.jumpToAcceptIfEqual(0x0806);
  size_t notIpv4 = 0;
  b.jumpToLabelIfNotEqual(0x0800, notIpv4);
  // Handed over by the kernel: marked for another host, yet sent to this interface's MAC.
  size_t notHandedOver = 0, otherMac = 0;
  b.add(BPF_LD | BPF_B | BPF_ABS, uint32_t(SKF_AD_OFF + SKF_AD_PKTTYPE));
  b.jumpToLabelIfNotEqual(3 /* PACKET_OTHERHOST */, notHandedOver);
  const packet::MacAddress& mac = spec.ownMac;
  b.add(BPF_LD | BPF_W | BPF_ABS, 0);
  b.jumpToLabelIfNotEqual((uint32_t{mac[0]} << 24) | (uint32_t{mac[1]} << 16) | (uint32_t{mac[2]} << 8) | mac[3], otherMac);
  b.add(BPF_LD | BPF_H | BPF_ABS, 4);
  b.jumpToAcceptIfEqual((uint32_t{mac[4]} << 8) | mac[5]);  // else on to the next clause
  b.bindLabelHere(notHandedOver);
  b.bindLabelHere(otherMac);
  if (spec.acceptIcmp) {
    b.add(BPF_LD | BPF_B | BPF_ABS, 14 + 9);
    b.jumpToAcceptIfEqual(1);
  }
  b.bindLabelHere(notIpv4);
  return b.finish();
}

void attachSocketFilter(int fd, const std::vector<sock_filter>& program) {
  sock_fprog fprog{static_cast<unsigned short>(program.size()), const_cast<sock_filter*>(program.data())};
  if (program.size() > BPF_MAXINSNS) throw SystemError("socket filter too long", E2BIG);
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &fprog, sizeof fprog) != 0) {
    throwSystemError("SO_ATTACH_FILTER");
  }
}

}  // namespace natlb::io

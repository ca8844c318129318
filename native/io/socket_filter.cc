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
  if (!spec.destinationIps.empty()) {
    b.add(BPF_LD | BPF_W | BPF_ABS, 14 + 16);
    for (uint32_t ip : spec.destinationIps) b.jumpToAcceptIfEqual(ip);
  }
  auto sourcePortClause = [&](uint8_t protocol, const std::vector<uint16_t>& ports) {
    if (ports.empty()) return;
    size_t otherProtocol = 0, laterFragment = 0;
    b.add(BPF_LD | BPF_B | BPF_ABS, 14 + 9);
    b.jumpToLabelIfNotEqual(protocol, otherProtocol);
    b.add(BPF_LD | BPF_H | BPF_ABS, 14 + 6);  // fragment offset: only the first fragment has ports
    b.add(BPF_ALU | BPF_AND | BPF_K, 0x1fff);
    b.jumpToLabelIfNotEqual(0, laterFragment);
    b.add(BPF_LDX | BPF_B | BPF_MSH, 14);       // X = IP header length
    b.add(BPF_LD | BPF_H | BPF_IND, 14);        // source port
    for (uint16_t port : ports) b.jumpToAcceptIfEqual(port);
    b.bindLabelHere(otherProtocol);
    b.bindLabelHere(laterFragment);
  };
  if (!spec.udpSourceIps.empty()) {
    size_t notUdp = 0;
    b.add(BPF_LD | BPF_B | BPF_ABS, 14 + 9);
    b.jumpToLabelIfNotEqual(17, notUdp);
    b.add(BPF_LD | BPF_W | BPF_ABS, 14 + 12);
    for (uint32_t ip : spec.udpSourceIps) b.jumpToAcceptIfEqual(ip);
    b.bindLabelHere(notUdp);
  }
  if (spec.acceptIcmp) {
    b.add(BPF_LD | BPF_B | BPF_ABS, 14 + 9);
    b.jumpToAcceptIfEqual(1);
  }
  sourcePortClause(6, spec.tcpSourcePorts);
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

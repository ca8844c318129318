#include "bpf_object.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>

#include "system_error.h"

namespace natlb::io {

namespace {

thread_local std::string libbpfLog;

int keepLibbpfMessage(libbpf_print_level level, const char* format, va_list arguments) {
  if (level == LIBBPF_DEBUG) return 0;
  char line[8192];  // the verifier's log arrives as one message
  const int length = std::vsnprintf(line, sizeof line, format, arguments);
  if (length > 0) libbpfLog.append(line, std::min(size_t(length), sizeof line - 1));
  constexpr size_t kKeep = 3000;  // its end says why
  if (libbpfLog.size() > kKeep) libbpfLog.erase(0, libbpfLog.size() - kKeep);
  return 0;
}

}  // namespace

void BpfObject::ObjectCloser::operator()(bpf_object* object) const { bpf_object__close(object); }

BpfObject::BpfObject(const unsigned char* image, size_t size, const std::string& what,
                     const std::function<void(BpfObject&)>& adjust)
    : what_(what) {
  libbpf_set_print(keepLibbpfMessage);
  libbpfLog.clear();
  bpf_object* object = bpf_object__open_mem(image, size, nullptr);
  if (object == nullptr) throwSystemError("open " + what + ": " + libbpfLog);
  object_.reset(object);
  if (adjust) adjust(*this);
  if (bpf_object__load(object) != 0) throwSystemError("load " + what + " (needs CAP_BPF and CAP_NET_ADMIN, or CAP_SYS_ADMIN): " + libbpfLog);
}

BpfObject::~BpfObject() = default;

bpf_map* BpfObject::map(const char* name) const {
  bpf_map* found = bpf_object__find_map_by_name(object_.get(), name);
  if (found == nullptr) throw SystemError(what_ + " has no map " + name, ENOENT);
  return found;
}

int BpfObject::mapFd(const char* name) const { return bpf_map__fd(map(name)); }

int BpfObject::programFd(const char* name) const {
  bpf_program* program = bpf_object__find_program_by_name(object_.get(), name);
  if (program == nullptr) throw SystemError(what_ + " has no program " + name, ENOENT);
  return bpf_program__fd(program);
}

void BpfObject::shareMap(const char* name, int fd) {
  if (bpf_map__reuse_fd(map(name), fd) != 0) throwSystemError(what_ + ": share map " + name);
}

void BpfObject::setMapSize(const char* name, uint32_t maxEntries) {
  if (bpf_map__set_max_entries(map(name), maxEntries) != 0) throwSystemError(what_ + ": size map " + name);
}

}  // namespace natlb::io

// One BPF object built into the addon (native/bpf/*.bpf.c): opened from memory, adjusted (map sizes,
// shared maps) before it is loaded, closed with its programs and maps when this goes away.
// libbpf's messages, the verifier's log among them, go into the error of a failed load, not to stderr.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

struct bpf_object;
struct bpf_map;

namespace natlb::io {

class BpfObject {
 public:
  // `adjust` runs between open and load: the only time map sizes can change or maps be shared.
  // `what` names the program in errors ("XDP program", "kernel fast path").
  BpfObject(const unsigned char* image, size_t size, const std::string& what,
            const std::function<void(BpfObject&)>& adjust = {});
  ~BpfObject();
  BpfObject(const BpfObject&) = delete;
  BpfObject& operator=(const BpfObject&) = delete;

  int programFd(const char* name) const;
  int mapFd(const char* name) const;
  // Before load only: use an existing map (another object's) in place of this object's own.
  void shareMap(const char* name, int fd);
  void setMapSize(const char* name, uint32_t maxEntries);

 private:
  bpf_map* map(const char* name) const;
  struct ObjectCloser {
    void operator()(bpf_object* object) const;
  };
  std::unique_ptr<bpf_object, ObjectCloser> object_;
  std::string what_;
};

}  // namespace natlb::io

// RAII ownership of an mmap()ed region.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <utility>

namespace natlb::io {

// Keeps the whole pages inside [address, address + length) out of forked children. The control
// plane runs `ip` and `nft` every few seconds, and Node's spawn forks synchronously: with the rings
// and a 1 M-flow map mapped, copying their page tables blocked the event loop 35-50 ms per spawn.
// The children exec at once and never touch this memory. Best effort: a failure only costs time.
inline void excludeFromForks(void* address, size_t length) {
  const uintptr_t page = uintptr_t(::sysconf(_SC_PAGESIZE));
  const uintptr_t begin = (uintptr_t(address) + page - 1) & ~(page - 1);
  const uintptr_t end = (uintptr_t(address) + length) & ~(page - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTFORK);
}

class MappedMemory {
 public:
  MappedMemory() = default;
  MappedMemory(void* address, size_t length) : address_(address), length_(length) { excludeFromForks(address, length); }
  MappedMemory(const MappedMemory&) = delete;
  MappedMemory& operator=(const MappedMemory&) = delete;
  MappedMemory(MappedMemory&& other) noexcept
      : address_(std::exchange(other.address_, nullptr)), length_(std::exchange(other.length_, 0)) {}
  MappedMemory& operator=(MappedMemory&& other) noexcept {
    if (this != &other) {
      reset();
      address_ = std::exchange(other.address_, nullptr);
      length_ = std::exchange(other.length_, 0);
    }
    return *this;
  }
  ~MappedMemory() { reset(); }

  uint8_t* bytes() const { return static_cast<uint8_t*>(address_); }
  size_t length() const { return length_; }
  void reset() {
    if (address_ != nullptr) ::munmap(address_, length_);
    address_ = nullptr;
    length_ = 0;
  }

 private:
  void* address_ = nullptr;
  size_t length_ = 0;
};

}  // namespace natlb::io

// Errors from system calls, carrying errno and the failing step.
#pragma once
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace natlb::io {

class SystemError : public std::runtime_error {
 public:
  SystemError(const std::string& what, int error)
      : std::runtime_error(what + ": " + std::strerror(error)), error_(error) {}
  int error() const { return error_; }

 private:
  int error_;
};

[[noreturn]] inline void throwSystemError(const std::string& what) { throw SystemError(what, errno); }

}  // namespace natlb::io

#include "http/socket_calls.h"

#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <boost/asio/error.hpp>
#include <cerrno>

namespace inferd::http {

namespace {

// The bytes of a system call's result, or 0 with `ec` set from errno.
size_t Result(long n, boost::system::error_code& ec) {
  if (n >= 0) {
    ec = {};
    return static_cast<size_t>(n);
  }
  if (errno == EAGAIN || errno == EWOULDBLOCK) {
    ec = boost::asio::error::would_block;
  } else {
    ec = boost::system::error_code(errno, boost::asio::error::get_system_category());
  }
  return 0;
}

}  // namespace

size_t RecvNow(int fd, boost::asio::mutable_buffer buffer, boost::system::error_code& ec) {
  long n;
  do {
    n = ::syscall(SYS_recvfrom, static_cast<long>(fd), buffer.data(), buffer.size(),
                  static_cast<long>(MSG_DONTWAIT), nullptr, nullptr);
  } while (n < 0 && errno == EINTR);
  const size_t bytes = Result(n, ec);
  if (n == 0 && buffer.size() > 0) ec = boost::asio::error::eof;
  return bytes;
}

size_t SendNow(int fd, boost::asio::const_buffer data, boost::system::error_code& ec) {
  long n;
  do {
    n = ::syscall(SYS_sendto, static_cast<long>(fd), data.data(), data.size(),
                  static_cast<long>(MSG_DONTWAIT | MSG_NOSIGNAL), nullptr, 0L);
  } while (n < 0 && errno == EINTR);
  return Result(n, ec);
}

}  // namespace inferd::http

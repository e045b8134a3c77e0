#include "http/drained_read.h"

#if INFERD_DRAINED_READ
#include <sys/socket.h>

#include <cerrno>

namespace inferd::http::drained_read_detail {

ReadResult ReadDry(int socket, boost::asio::mutable_buffer buffer, boost::system::error_code& ec,
                   size_t& bytes) {
  ec = {};
  bytes = 0;
  ssize_t n;
  do {
    n = ::recv(socket, buffer.data(), buffer.size(), MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n > 0) {
    bytes = static_cast<size_t>(n);
    return bytes < buffer.size() ? ReadResult::kDry : ReadResult::kDone;
  }
  if (n == 0) {
    ec = boost::asio::error::eof;
  } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
    return ReadResult::kWouldBlock;
  } else {
    ec = boost::system::error_code(errno, boost::asio::error::get_system_category());
  }
  return ReadResult::kDone;
}

}  // namespace inferd::http::drained_read_detail
#endif

#include "http/drained_read.h"

#if INFERD_DRAINED_READ
#include "http/socket_calls.h"

namespace inferd::http::drained_read_detail {

ReadResult ReadDry(int socket, boost::asio::mutable_buffer buffer, boost::system::error_code& ec,
                   size_t& bytes) {
  bytes = RecvNow(socket, buffer, ec);
  if (ec == boost::asio::error::would_block) {
    ec = {};
    return ReadResult::kWouldBlock;
  }
  if (!ec && bytes < buffer.size()) return ReadResult::kDry;
  return ReadResult::kDone;
}

}  // namespace inferd::http::drained_read_detail
#endif

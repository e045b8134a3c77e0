#include "http/drained_read.h"

#if INFERD_DRAINED_READ
#include <sys/socket.h>

#include <cerrno>

namespace inferd::http::drained_read_detail {

ReadResult ReadDry(int socket, boost::asio::mutable_buffer buffer, boost::system::error_code& ec,
                   size_t& bytes) {
  char* const data = static_cast<char*>(buffer.data());
  const size_t size = buffer.size();
  ec = {};
  bytes = 0;
  if (size < 2) {  // no room for the second message: a plain read, never reported dry
    ssize_t n;
    do {
      n = ::recv(socket, data, size, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
      bytes = static_cast<size_t>(n);
    } else if (n == 0) {
      ec = boost::asio::error::eof;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return ReadResult::kWouldBlock;
    } else {
      ec = boost::system::error_code(errno, boost::asio::error::get_system_category());
    }
    return ReadResult::kDone;
  }
  // Two messages in one call: the buffer but its last byte, then that byte.
  // The second fails with EAGAIN only when the first emptied the socket and
  // neither an end of stream nor an error is pending (tcp_recvmsg checks
  // both before it answers EAGAIN); it reads 0 bytes when the end of stream
  // waits behind the data, or a byte that arrived meanwhile. An error
  // pending before the call fails the whole call (recvmmsg asks for it
  // first); one raised during the call is kept for the next read, and the
  // wakeup that raised it comes after this read's edge: a new edge.
  iovec iov[2] = {{data, size - 1}, {data + size - 1, 1}};
  mmsghdr msgs[2] = {};
  for (int i = 0; i < 2; ++i) {
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int r;
  do {
    r = ::recvmmsg(socket, msgs, 2, MSG_DONTWAIT, nullptr);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK) return ReadResult::kWouldBlock;
    ec = boost::system::error_code(errno, boost::asio::error::get_system_category());
    return ReadResult::kDone;
  }
  const size_t first = msgs[0].msg_len;
  if (first == 0) {
    ec = boost::asio::error::eof;
    return ReadResult::kDone;
  }
  bytes = first;
  // The second message failed: with EAGAIN (the socket ran dry), or with an
  // error raised meanwhile, kept for the next read, whose new edge is coming.
  if (r == 1) return ReadResult::kDry;
  if (msgs[1].msg_len == 0) return ReadResult::kDone;  // the end of stream is next: not dry
  // One more byte arrived between the two: it goes after the first's bytes.
  if (first < size - 1) data[first] = data[size - 1];
  bytes = first + 1;
  return ReadResult::kDone;
}

}  // namespace inferd::http::drained_read_detail
#endif

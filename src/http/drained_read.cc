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
    const ssize_t n = ::recv(socket, data, size, MSG_DONTWAIT);
    if (n > 0) {
      bytes = static_cast<size_t>(n);
    } else if (n == 0) {
      ec = boost::asio::error::eof;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      return ReadResult::kWouldBlock;
    } else {
      ec = boost::system::error_code(errno, boost::asio::error::get_system_category());
    }
    return ReadResult::kDone;
  }
  // Two messages in one call: the buffer but its last byte, then that byte.
  // The second fails with EAGAIN when the first emptied the socket; it reads
  // 0 bytes when the end of stream waits behind the data (an error waiting
  // there ends it too: the kernel keeps that error for the next read), or a
  // byte that arrived meanwhile.
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
  // The second message found nothing (EAGAIN): the socket ran dry. (Or it
  // failed with an error that arrived with the data, which the kernel keeps
  // for the next read: that read then waits for an edge epoll has reported
  // already, and the idle timeout ends the connection, whose peer reset it
  // anyway. Telling the two apart would cost the system call saved here.)
  if (r == 1) return ReadResult::kDry;
  if (msgs[1].msg_len == 0) return ReadResult::kDone;  // the end of stream is next: not dry
  // One more byte arrived between the two: it goes after the first's bytes.
  if (first < size - 1) data[first] = data[size - 1];
  bytes = first + 1;
  return ReadResult::kDone;
}

}  // namespace inferd::http::drained_read_detail
#endif

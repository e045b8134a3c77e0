#pragma once
// The I/O threads' recv and send on a request's hot path, made as system
// calls directly. glibc's recv/send are cancellation points: in a process
// with more than one thread, each call switches asynchronous cancellation on
// and off around the system call (two atomic read-modify-writes in
// __pthread_enable/disable_asynccancel, 0.09 us a memo hit with recv,
// sendmsg and epoll_wait, docs/benchmarks.md); inferd never cancels a
// thread. Neither call blocks (MSG_DONTWAIT) and a send to a closed
// connection raises no SIGPIPE (MSG_NOSIGNAL).

// clang-format off
#include <utility>  // before Asio (Boost 1.74 + GCC 12)
// clang-format on

#include <boost/asio/buffer.hpp>
#include <boost/system/error_code.hpp>
#include <cstddef>

namespace inferd::http {

// Reads at most `buffer.size()` bytes of `fd`. Returns the bytes read, or 0
// with `ec` set: boost::asio::error::would_block when nothing is there, eof
// at the end of the stream, else the system error.
size_t RecvNow(int fd, boost::asio::mutable_buffer buffer, boost::system::error_code& ec);

// Sends what it can of `data` on `fd` (one call). Returns the bytes sent, or
// 0 with `ec` set: would_block when the socket's buffer is full, else the
// system error.
size_t SendNow(int fd, boost::asio::const_buffer data, boost::system::error_code& ec);

}  // namespace inferd::http

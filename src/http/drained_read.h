#pragma once
// DrainedReads::Read: a socket read that waits the way nginx does. Boost.Asio
// 1.74 tries every read at once (a `recv` before the wait) unless the last
// read on the socket ran dry, and it counts only a read of zero bytes as
// running dry; so a keep-alive connection's read for its next request costs
// a `recv` that fails with EAGAIN before each wait (0.9 calls per request
// with two I/O threads, docs/benchmarks.md). This read takes a short read
// (fewer bytes than the buffer) for an empty socket, as nginx does, and
// reports it to Asio's epoll reactor, which then queues the next read
// without trying it (and without an epoll_ctl call: the descriptor stays
// registered, edge-triggered) until epoll reports new data. Data that
// arrives after the read raises a new edge; an edge that arrives while no
// read is queued is not lost either (the reactor marks the socket ready, and
// the next read is tried at once). What a short read misses: the client's
// end of stream (or a reset) that came under the same edge as its last data
// raises no new edge, and every later read on the socket (this one or
// Asio's own) waits for one. nginx learns it from EPOLLRDHUP, which Asio
// does not pass to the read. So the server tries its other reads (the rest
// of a request, the lingering close) directly first, and asks poll(2) about
// the waits for a next request once in a while
// (Server::Options::idle_check_interval), cancelling those that have
// something, to read it. (Asking in the same call, with a second one-byte
// message to recvmmsg, measured as costly as the failed recv it saves.)
//
// `known_empty`: the caller's own non-blocking read found nothing an
// instant ago, on the thread that runs the socket's io_context (and no
// other thread runs it), so the try at start is skipped too; data that
// arrives after that failed read raises an edge that the queued read sees.
//
// The operation is built like Asio's own reactive_socket_recv_op (its
// completion, handler allocation and outstanding work are the same); it
// reaches into Asio's detail namespace, so it is compiled only for the Boost
// version it was written against (Debian 12's 1.74) with the epoll reactor,
// and falls back to the plain asynchronous read elsewhere.

// clang-format off
#include <utility>  // before Asio (Boost 1.74 + GCC 12)
// clang-format on

#include <boost/asio.hpp>
#include <boost/version.hpp>

#if BOOST_VERSION == 107400 && defined(BOOST_ASIO_HAS_EPOLL) && !defined(BOOST_ASIO_HAS_IO_URING)
#define INFERD_DRAINED_READ 1
#include <boost/asio/detail/bind_handler.hpp>
#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/memory.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/detail/socket_ops.hpp>
#endif

namespace inferd::http {

#if INFERD_DRAINED_READ
namespace drained_read_detail {

namespace ad = boost::asio::detail;

enum class ReadResult { kWouldBlock, kDry, kDone };

// Reads what `socket` holds into `buffer` without blocking (one recv):
// kWouldBlock when nothing is there; kDry for a short read (data, fewer
// bytes than the buffer: taken for an empty socket); otherwise kDone (a
// full buffer, or `ec` set for an error or the end of stream, bytes == 0
// then).
ReadResult ReadDry(int socket, boost::asio::mutable_buffer buffer, boost::system::error_code& ec,
                   size_t& bytes);

// The read whose try at start is to be skipped (known_empty), while the
// reactor's start_op runs on this thread; a try from an epoll event (later,
// from the io_context's run loop) never matches it.
inline thread_local const void* skip_try = nullptr;

template <typename Handler, typename IoExecutor>
class Op : public ad::reactor_op {
 public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(Op);

  Op(const boost::system::error_code& success_ec, ad::socket_type socket,
     boost::asio::mutable_buffer buffer, Handler& handler, const IoExecutor& io_ex)
      : ad::reactor_op(success_ec, &Op::DoPerform, &Op::DoComplete),
        socket_(socket),
        buffer_(buffer),
        handler_(static_cast<Handler&&>(handler)),
        work_(handler_, io_ex) {}

  static status DoPerform(ad::reactor_op* base) {
    Op* o = static_cast<Op*>(base);
    if (skip_try == o) return not_done;  // known empty: wait for the next edge
    switch (ReadDry(o->socket_, o->buffer_, o->ec_, o->bytes_transferred_)) {
      case ReadResult::kWouldBlock:
        return not_done;  // stays queued for the next edge
      case ReadResult::kDry:
        return done_and_exhausted;  // no further try before the next edge
      case ReadResult::kDone:
        return done;
    }
    return done;
  }

  static void DoComplete(void* owner, ad::operation* base, const boost::system::error_code&,
                         std::size_t) {
    Op* o = static_cast<Op*>(base);
    ptr p = {ad::addressof(o->handler_), o, o};
    ad::handler_work<Handler, IoExecutor> w(
        static_cast<ad::handler_work<Handler, IoExecutor>&&>(o->work_));
    // The handler is moved out before the operation's memory is freed (a
    // part of it may own that memory), then called.
    ad::binder2<Handler, boost::system::error_code, std::size_t> handler(o->handler_, o->ec_,
                                                                         o->bytes_transferred_);
    p.h = ad::addressof(handler.handler_);
    p.reset();
    if (owner) {
      ad::fenced_block b(ad::fenced_block::half);
      w.complete(handler, handler.handler_);
    }
  }

 private:
  ad::socket_type socket_;
  boost::asio::mutable_buffer buffer_;
  Handler handler_;
  ad::handler_work<Handler, IoExecutor> work_;
};

// basic_socket's implementation is protected: reached through a pointer to
// member named in a derived class (well-defined on any basic_socket).
template <typename Socket>
struct Access : Socket {
  static auto& Impl(Socket& s) { return s.*(&Access::impl_); }
};

}  // namespace drained_read_detail
#endif

// Reads on sockets of one io_context (the reactor is looked up once: Asio's
// use_service takes a lock and walks a list).
class DrainedReads {
 public:
  explicit DrainedReads(boost::asio::execution_context& context)
#if INFERD_DRAINED_READ
      : reactor_(&boost::asio::use_service<boost::asio::detail::reactor>(context))
#endif
  {
    (void)context;
  }

  // Reads what `socket` (of this io_context) holds into `buffer` (at most
  // its size), waiting for data if there is none; completes with
  // (error_code, bytes) like async_read_some. `buffer` must not be empty.
  template <typename Socket, typename Token>
  auto Read(Socket& socket, boost::asio::mutable_buffer buffer, bool known_empty, Token&& token) {
#if INFERD_DRAINED_READ
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [&socket, reactor = reactor_](auto handler, boost::asio::mutable_buffer buf, bool empty) {
          namespace ad = boost::asio::detail;
          using Handler = std::decay_t<decltype(handler)>;
          using IoExecutor = typename Socket::executor_type;
          using Op = drained_read_detail::Op<Handler, IoExecutor>;
          auto& io = drained_read_detail::Access<Socket>::Impl(socket);
          auto& impl = io.get_implementation();
          const bool is_continuation = boost_asio_handler_cont_helpers::is_continuation(handler);
          typename Op::ptr p = {ad::addressof(handler), Op::ptr::allocate(handler), 0};
          p.p = new (p.v)
              Op(boost::system::error_code(), impl.socket_, buf, handler, io.get_executor());
          Op* op = p.p;
          p.v = p.p = 0;
          if ((impl.state_ & ad::socket_ops::non_blocking) == 0 &&
              !ad::socket_ops::set_internal_non_blocking(impl.socket_, impl.state_, true,
                                                         op->ec_)) {
            reactor->post_immediate_completion(op, is_continuation);
            return;
          }
          drained_read_detail::skip_try = empty ? op : nullptr;
          reactor->start_op(ad::reactor::read_op, impl.socket_, impl.reactor_data_, op,
                            is_continuation, /*allow_speculative=*/true);
          drained_read_detail::skip_try = nullptr;
        },
        token, buffer, known_empty);
#else
    (void)known_empty;
    return socket.async_read_some(buffer, std::forward<Token>(token));
#endif
  }

 private:
#if INFERD_DRAINED_READ
  boost::asio::detail::reactor* reactor_;
#endif
};

}  // namespace inferd::http

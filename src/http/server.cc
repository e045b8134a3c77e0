#include "http/server_impl.h"

#include "common/recycling.h"
#include "http/response_encoding.h"
#include "http/socket_calls.h"

namespace inferd::http {

awaitable<void> Server::Impl::WriteError(Session& s, Status status, std::string_view message,
                                         const HttpError* error) {
  Response res = MakeErrorResponse(status, message);
  if (error != nullptr) {
    for (const auto& [name, value] : error->fields) res.set(name, value);
  }
  CountResponse(static_cast<unsigned>(status));
  res.keep_alive(false);
  res.prepare_payload();
  error_code ec = co_await WriteResponse(s, res);
  // Lingering close: stop sending, then discard what the client still sends
  // for a moment, so that it reads our answer instead of a reset.
  s.stream.socket().shutdown(Socket::shutdown_send, ec);
  // Each read is tried directly first: after a short read Asio waits for a
  // new epoll event before reading again (DrainedReads), and an end of
  // stream that came with the request raises none.
  std::array<char, 4096> sink;
  s.stream.expires_after(std::chrono::milliseconds(500));
  for (size_t total = 0; total < (4u << 20);) {
    size_t n = s.stream.socket().read_some(asio::buffer(sink), ec);
    if (ec == asio::error::would_block) {
      n = co_await s.stream.async_read_some(asio::buffer(sink),
                                            asio::redirect_error(use_awaitable, ec));
    }
    if (ec) break;
    total += n;
  }
}

// Parses what `buf` holds into `reader`, consuming it.
static void FeedBuffered(beast::flat_buffer& buf, RequestReader& reader) {
  auto data = buf.data();
  buf.consume(reader.Feed({static_cast<const char*>(data.data()), data.size()}));
}

// Reads the rest of a request into `reader` (ServeOne parsed what was
// buffered already: a small request that arrived whole costs no coroutine,
// no further I/O and no timer) under the read deadline, which cancels the
// reads instead of closing the socket, so that the client still gets its
// 408. Returns the I/O error that ended the read, if any; the reader holds
// a protocol error.
awaitable<error_code> Server::Impl::ReadRequest(Session& s, beast::flat_buffer& buf,
                                                RequestReader& reader, bool* expired) {
  auto deadline = std::make_shared<ReadDeadline>();
  Timer timer(s.stream.get_executor(), options.read_timeout);
  timer.async_wait([deadline, &s](error_code tec) {
    if (tec || deadline->finished) return;  // `s` is alive while the read is unfinished
    deadline->expired = true;
    error_code ignored;
    s.stream.socket().cancel(ignored);
  });
  error_code ec;
  bool continue_sent = false;
  bool tried = false;
  while (!reader.done() && !reader.error()) {
    if (!continue_sent && reader.wants_continue()) {
      continue_sent = true;
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      co_await asio::async_write(s.stream.socket(), asio::buffer(kContinue),
                                 asio::redirect_error(use_awaitable, ec));
      if (ec) break;
    }
    // What the reader has not consumed stays buffered (an incomplete line
    // of the header, bounded by max_header_bytes); body bytes are consumed
    // as they arrive. The first read is tried directly: after the short
    // read that brought the request's start, Asio waits for a new epoll
    // event before reading (DrainedReads), and an end of stream that came
    // with it raises none.
    size_t n = 0;
    ec = asio::error::would_block;
    if (!std::exchange(tried, true)) n = s.stream.socket().read_some(buf.prepare(kReadChunk), ec);
    if (ec == asio::error::would_block) {
      n = co_await s.stream.socket().async_read_some(buf.prepare(kReadChunk),
                                                     asio::redirect_error(use_awaitable, ec));
    }
    if (ec) break;
    buf.commit(n);
    FeedBuffered(buf, reader);
  }
  deadline->finished = true;
  timer.cancel();
  *expired = deadline->expired;
  co_return ec;
}

// Writes `res` as one buffer sequence: first a direct non-blocking write,
// which sends a small response at once on an idle socket (TryWrite, no
// coroutine), then, only for what is left, an asynchronous write under the
// write timeout (WriteRest).
bool Server::Impl::TryWrite(Session& s, Response& res, size_t* sent, error_code* ec) {
  std::string& head = s.head;  // kept by the session: no allocation per response
  head.clear();
  res.SerializeHeader(&head, kServerName);
  const std::string& body = res.body();
  if (body.size() <= kBodyCopiedToHead) {
    // A small body goes behind a copy of the header, in a buffer of the
    // thread's (no connection keeps it), and the whole in one send(2):
    // cheaper in the kernel than sendmsg's message header and vector.
    thread_local std::string wire;
    wire.assign(head);
    wire.append(body);
    *sent = SendNow(s.stream.socket().native_handle(), asio::buffer(wire), *ec);
  } else {
    std::array<asio::const_buffer, 2> wire = {asio::buffer(head), asio::buffer(body)};
    *sent = s.stream.socket().write_some(wire, *ec);
  }
  if (*ec == asio::error::would_block || *ec == asio::error::try_again) {
    *ec = {};
    *sent = 0;
  }
  return *ec || *sent == head.size() + body.size();
}

awaitable<error_code> Server::Impl::WriteRest(Session& s, Response& res, size_t sent) {
  const std::string& head = s.head;
  asio::const_buffer rest_head = asio::buffer(head) + std::min(sent, head.size());
  asio::const_buffer rest_body =
      asio::buffer(res.body()) + (sent > head.size() ? sent - head.size() : 0);
  std::array<asio::const_buffer, 2> rest = {rest_head, rest_body};
  error_code ec;
  s.stream.expires_after(options.write_timeout);
  co_await asio::async_write(s.stream, rest, asio::redirect_error(use_awaitable, ec));
  co_return ec;
}

awaitable<error_code> Server::Impl::WriteResponse(Session& s, Response& res) {
  size_t sent = 0;
  error_code ec;
  if (TryWrite(s, res, &sent, &ec)) co_return ec;
  co_return co_await WriteRest(s, res, sent);
}

// Reads and answers one request. Returns false when the connection must close.
awaitable<bool> Server::Impl::ServeOne(Session& s, beast::flat_buffer& buf) {
  // The reader lives in the session, and the request goes straight into
  // Dispatch: this coroutine's frame stays small enough for Asio to reuse
  // its memory from request to request (no allocation per request).
  RequestReader& reader = s.reader.emplace(reader_options);
  bool expired = false;
  error_code ec;
  FeedBuffered(buf, reader);
  if (!reader.done() && !reader.error()) ec = co_await ReadRequest(s, buf, reader, &expired);
  if (expired) {
    co_await WriteError(s, Status::request_timeout,
                        "request not received completely within " +
                            std::to_string(options.read_timeout.count()) + " ms");
    co_return false;
  }
  if (reader.error()) {
    co_await WriteError(s, reader.error()->status, reader.error()->message, &*reader.error());
    co_return false;
  }
  if (ec || !reader.done()) co_return false;  // the client went away

  const Request& req = reader.request();
  bool keep_alive = req.keep_alive();
  const unsigned version = req.version();
  const bool head = req.method() == Verb::head;
  bool gzip_ok = false;
  if (options.gzip_min_bytes > 0) {
    auto accept = req["Accept-Encoding"];
    gzip_ok = !accept.empty() && AcceptsGzip(std::string_view(accept.data(), accept.size()));
  }
  RequestStarted(s);
  struct Finished {
    Impl* impl;
    Session& s;
    ~Finished() { impl->RequestFinished(s); }
  } finished{this, s};
  Response res;
  // The answer: in the pending response when the handler answered at once
  // (used where it lies, not moved out), else in `res`.
  Response* answer = &res;
  bool failed = false;
  std::shared_ptr<PendingResponse> pending;
  bool watching = false;
  try {
    // Most answers are there when the handler returns (errors, cache hits):
    // no suspension for those.
    answer = Dispatch(reader.Release(), &res, &pending);
    if (answer == nullptr) {
      WatchForDisconnect(s, PendingResponse::CancelOf(pending));
      watching = true;
      res = co_await AsyncAwait(pending, use_awaitable);
      answer = &res;
    }
  } catch (const std::exception& e) {
    failed = true;
    res = InternalError(e.what());
    answer = &res;
  } catch (...) {
    failed = true;
    res = InternalError("unknown exception");
    answer = &res;
  }
  Response& out = *answer;
  std::shared_ptr<ResponseStream> stream = !failed && pending ? pending->stream() : nullptr;
  if (!stream && watching) {
    error_code ignored;
    s.stream.socket().cancel(ignored);  // ends the watch
  }
  keep_alive = keep_alive && !draining.load() && !s.closing;
  out.version(version == 10 ? 10 : 11);
  out.keep_alive(keep_alive);
  // Only JSON pays for it: it halves at 140-220 MB/s, while tensor bytes
  // shrink by 6-10% (docs/benchmarks.md, "Response compression").
  if (gzip_ok && out[beast_http::field::content_type] == "application/json") {
    MaybeGzipResponse(out, options.gzip_min_bytes, 1);
  }
  if (stream) {
    CountResponse(out.result_int());
    // The watch goes on while the stream is written: a client that leaves
    // cancels the producer.
    if (!watching) WatchForDisconnect(s, PendingResponse::CancelOf(pending));
    bool ok = co_await WriteStream(s, out, stream, PendingResponse::CancelOf(pending), head);
    error_code ignored;
    s.stream.socket().cancel(ignored);  // ends the watch
    co_return ok&& keep_alive;
  }
  out.prepare_payload();
  if (head) out.body().clear();  // HEAD: GET's header, Content-Length included
  CountResponse(out.result_int());
  size_t sent = 0;
  if (!TryWrite(s, out, &sent, &ec)) ec = co_await WriteRest(s, out, sent);
  co_return !ec && keep_alive;
}

// Routes `req` and calls its handler. Returns the answer if it is there
// already (in *res, or in *pending); otherwise null, and *pending is what
// to wait for. An exception thrown by the handler becomes a 500; one thrown later, on another
// thread, is the handler's to catch (the Responder answers 500 if it is dropped unsent).
Response* Server::Impl::Dispatch(Request req, Response* res,
                                 std::shared_ptr<PendingResponse>* pending) {
  std::string_view target(req.target().data(), req.target().size());
  Router::Match m = router->Find(req.method(), target);
  if (!m.handler) {
    if (m.status == Status::method_not_allowed) {
      *res = MakeErrorResponse(m.status, "method " + std::string(req.method_string()) +
                                             " is not allowed on " + std::string(target));
      res->set(beast_http::field::allow, m.allow);
    } else if (m.status == Status::bad_request) {
      *res = MakeErrorResponse(m.status, m.error);
    } else {
      *res = MakeErrorResponse(Status::not_found, "no such path: " + std::string(target));
    }
    return res;
  }
  // Its block is recycled: made and dropped once per request.
  auto waiting = std::allocate_shared<PendingResponse>(RecyclingAllocator<PendingResponse>(),
                                                       options.max_stream_buffer_bytes);
  {
    // Held only around the call: if the handler drops its copy unsent, the
    // Responder's last copy answers 500 instead of hanging. The Responder
    // points at `waiting` itself: no allocation of its own.
    Responder responder(waiting);
    try {
      (*m.handler)(std::move(req), m.params, responder);
    } catch (const std::exception& e) {
      responder.Send(InternalError(e.what()));
    } catch (...) {
      responder.Send(InternalError("unknown exception"));
    }
  }
  *pending = waiting;  // for its stream, if the answer is one
  return waiting->Delivered();
}

void Server::Impl::WatchForDisconnect(Session& s, std::weak_ptr<Cancellation> cancel) {
  s.stream.socket().async_wait(
      Socket::wait_read, [weak = s.self, cancel = std::move(cancel)](error_code ec) {
        auto session = weak.lock();
        if (ec || !session) return;  // the answer came first
        char byte;
        error_code peek_ec;
        size_t n =
            session->stream.socket().receive(asio::buffer(&byte, 1), Socket::message_peek, peek_ec);
        if (peek_ec == asio::error::would_block) {
          WatchForDisconnect(*session, cancel);  // spurious wake-up
        } else if (peek_ec || n == 0) {
          if (auto c = cancel.lock()) c->Cancel(CancelledError("the client closed the connection"));
        }
      });
}

Response Server::Impl::InternalError(std::string_view what) {
  if (internal_errors) internal_errors->Increment();
  int64_t suppressed = 0;
  if (internal_error_log.ShouldLog(&suppressed)) {
    INFERD_LOG_ERROR("request failed with an exception: {} ({} similar suppressed)", what,
                     suppressed);
  }
  return MakeErrorResponse(Status::internal_server_error, "internal error: " + std::string(what));
}

awaitable<void> Server::Impl::RunSession(AcceptedFd fd, IoWorker* worker) {
  Socket socket(worker->ioc);  // on this thread (see IoWorker)
  if (!fd.AssignTo(socket, protocol)) {
    connections.fetch_sub(1);
    co_return;
  }
  error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  socket.non_blocking(true, ec);  // WriteResponse writes directly first
  // Shared only with the idle timer's handler, which holds it weakly.
  auto session = std::make_shared<Session>(std::move(socket), worker);
  Session& s = *session;
  s.self = session;
  auto it = worker->sessions.insert(worker->sessions.end(), &s);
  struct Unlink {
    Impl* impl;
    IoWorker* w;
    std::list<Session*>::iterator it;
    ~Unlink() {
      w->sessions.erase(it);
      impl->connections.fetch_sub(1);
    }
  } unlink{this, worker, it};

  beast::flat_buffer buf;
  s.idle_since = CoarseSteadyNow();
  ArmIdleTimer(session, s.idle_since + options.idle_timeout);
  // A connection's first request is served even during a drain: the client
  // connected before the listener closed and has likely sent it already; so
  // is the read after the idle check woke the wait.
  for (bool must_read = true; must_read || !draining.load();) {
    must_read = false;
    if (buf.size() == 0) {
      // An idle connection keeps no large buffer from its last request.
      if (buf.capacity() > 16384) buf.shrink_to_fit();
      // A busy client's next request has often arrived by now (pipelined,
      // or sent while this thread served others): read it at once, without
      // suspending (the socket is non-blocking). Otherwise wait for it with
      // a read that tries nothing before epoll reports data when the socket
      // is known to be empty (this try found nothing, or the last read ran
      // dry: DrainedReads), on the socket itself, so that the idle timer,
      // not the stream's (which is only set around the stream's own reads
      // and writes), bounds the wait. After a try that found nothing, the
      // next requests are waited for at once: when requests seldom wait in
      // the socket (each of two threads serving half the connections), the
      // try would mostly be one more recv call for nothing.
      constexpr int kWaitFirstAfterMiss = 16;
      size_t n = 0;
      ec = asio::error::would_block;
      const bool tried = s.wait_first == 0;
      if (tried) {
        n = RecvNow(s.stream.socket().native_handle(), buf.prepare(8192), ec);
        if (ec == asio::error::would_block) s.wait_first = kWaitFirstAfterMiss;
      } else {
        --s.wait_first;
      }
      if (ec == asio::error::would_block) {
        s.idle = true;
        s.served_without_wait = 0;
        s.idle_since = CoarseSteadyNow();
        n = co_await s.worker->reads.Read(s.stream.socket(), buf.prepare(8192),
                                          /*known_empty=*/tried,
                                          asio::redirect_error(use_awaitable, ec));
        s.idle = false;
      }
      const bool poked = std::exchange(s.poked, false);
      if (ec == asio::error::operation_aborted && poked && !s.closing && !draining.load()) {
        s.wait_first = 0;  // the idle check saw data or the end of stream: read it
        must_read = true;
        continue;
      }
      if (ec == asio::error::operation_aborted && (s.closing || draining.load())) {
        // The server cancelled the wait to close (drain, idle timeout,
        // room at the connection limit); if a request had already arrived,
        // serve it (with Connection: close) rather than drop it.
        error_code aec;
        if (s.stream.socket().available(aec) > 0 && !aec) {
          co_await ServeOne(s, buf);
        }
        break;
      }
      if (ec) break;  // closed or idle timeout
      buf.commit(n);
    }
    s.idle = false;
    if (!co_await ServeOne(s, buf)) break;
    // On to the next read at once. (Until 2026-12-02 the session first
    // yielded to the handlers queued on its thread whenever its direct
    // reads kept finding requests, so that a busy client's next request
    // had time to arrive; since a wait costs no failed recv (DrainedReads),
    // that pass of the event loop saved nothing: CPU per memo hit 0.93-1.02
    // x without it, docs/benchmarks.md, "No yield before the next read".)
    // A connection whose requests are always there already (pipelined, or
    // sent ahead) would then never suspend, and its thread's other
    // connections would wait behind it: after kServedBeforeYield requests
    // without a wait, it yields once. Here, before the loop's drain check,
    // so that a drain begun meanwhile is seen.
    constexpr int kServedBeforeYield = 16;
    if (++s.served_without_wait >= kServedBeforeYield) {
      s.served_without_wait = 0;
      co_await asio::post(s.stream.get_executor(), use_awaitable);
    }
  }
  s.idle_timer.cancel();
  s.stream.socket().shutdown(Socket::shutdown_both, ec);
  s.stream.socket().close(ec);
}

}  // namespace inferd::http

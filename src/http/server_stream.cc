// Streamed responses of http::Server: the producer's buffer (ResponseStream)
// and the connection's writer (Server::Impl::WriteStream).

#include <cstdio>

#include "http/server_impl.h"

namespace inferd::http {

bool ResponseStream::Write(std::string data, std::function<void()> resume) {
  Ready ready;
  bool more = false;
  bool release = false;  // gone or closed: never leave the producer waiting
  {
    MutexLock l(&mu_);
    if (closed_ || gone()) {
      release = true;
    } else {
      buffered_ += data.size();
      queued_.push_back(std::move(data));
      more = buffered_ < limit_;
      if (!more) resumes_.push_back(std::move(resume));
      ready = std::move(ready_);
      ready_ = nullptr;
    }
  }
  if (ready) ready();
  if (release && resume) resume();
  return more;
}

void ResponseStream::Close() {
  Ready ready;
  {
    MutexLock l(&mu_);
    closed_ = true;
    ready = std::move(ready_);
    ready_ = nullptr;
  }
  if (ready) ready();
}

void ResponseStream::OnReady(Ready ready) {
  {
    MutexLock l(&mu_);
    if (queued_.empty() && !closed_ && !gone()) {
      ready_ = std::move(ready);
      return;
    }
  }
  ready();
}

std::vector<std::string> ResponseStream::Take(bool* closed) {
  MutexLock l(&mu_);
  *closed = closed_;
  return std::exchange(queued_, {});
}

void ResponseStream::Drained(size_t bytes) {
  std::vector<std::function<void()>> resumes;
  {
    MutexLock l(&mu_);
    buffered_ -= std::min(bytes, buffered_);
    if (buffered_ < limit_ / 2) resumes.swap(resumes_);
  }
  for (auto& r : resumes) r();
}

void ResponseStream::MarkGone() {
  std::vector<std::function<void()>> resumes;
  {
    MutexLock l(&mu_);
    gone_.store(true, std::memory_order_release);
    queued_.clear();
    buffered_ = 0;
    resumes.swap(resumes_);
  }
  for (auto& r : resumes) r();
}

awaitable<bool> Server::Impl::WriteStream(Session& s, Response& head,
                                          std::shared_ptr<ResponseStream> stream,
                                          const std::weak_ptr<Cancellation>& cancel,
                                          bool head_only) {
  const bool chunked = head.version() != 10;  // HTTP/1.0: the body ends with the connection
  head.erase(beast_http::field::content_length);
  head.body().clear();
  if (chunked) {
    head.set(beast_http::field::transfer_encoding, "chunked");
  } else {
    head.keep_alive(false);
  }
  std::string wire;
  head.SerializeHeader(&wire, kServerName);
  error_code ec;
  auto fail = [&] {
    if (auto c = cancel.lock()) c->Cancel(CancelledError("the client stopped reading the stream"));
    stream->MarkGone();
  };
  if (head_only) {
    // HEAD: no body follows the head, so nothing of the producer's is
    // wanted. Stopped first: the head's write may wait on the client.
    if (auto c = cancel.lock()) c->Cancel(CancelledError("HEAD: a stream's body is not sent"));
    stream->MarkGone();
    s.stream.expires_after(options.write_timeout);
    co_await asio::async_write(s.stream, asio::buffer(wire),
                               asio::redirect_error(use_awaitable, ec));
    co_return !ec && chunked;  // HTTP/1.0: GET's body would end with the connection
  }
  for (;;) {
    bool closed = false;
    std::vector<std::string> pieces = stream->Take(&closed);
    size_t bytes = 0;
    for (const auto& p : pieces) {
      if (p.empty()) continue;  // a zero-length chunk would end the body
      if (chunked) {
        char size_line[24];
        int n = std::snprintf(size_line, sizeof(size_line), "%zx\r\n", p.size());
        wire.append(size_line, static_cast<size_t>(n));
      }
      wire += p;
      if (chunked) wire += "\r\n";
      bytes += p.size();
    }
    if (closed && chunked) wire += "0\r\n\r\n";
    if (!wire.empty()) {
      s.stream.expires_after(options.write_timeout);
      co_await asio::async_write(s.stream, asio::buffer(wire),
                                 asio::redirect_error(use_awaitable, ec));
      wire.clear();
      if (ec) {
        fail();
        co_return false;
      }
    }
    stream->Drained(bytes);
    if (closed) co_return chunked;
    if (stream->gone()) co_return false;
    co_await AsyncStreamReady(stream, use_awaitable);
  }
}

}  // namespace inferd::http

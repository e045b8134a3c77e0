#pragma once
// HTTP vocabulary shared by the server, the router and the client.
// Boost 1.74 with GCC 12: <utility> must come before Asio's headers.
// clang-format off
#include <utility>
// clang-format on

#include <boost/beast/http.hpp>
#include <boost/container/small_vector.hpp>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/cancellation.h"
#include "http/request.h"
#include "http/response.h"

namespace inferd::http {

namespace beast_http = boost::beast::http;
// What the HTTP client sends and reads (Beast messages); the server reads
// http::Request (request.h) and answers with http::Response (response.h).
using ClientRequest = beast_http::request<beast_http::string_body>;
using ClientResponse = beast_http::response<beast_http::string_body>;
using Status = beast_http::status;
using Verb = beast_http::verb;

// Path parameters captured by the router: "{model}" -> "resnet18".
struct PathParams {
  // Inline room for the KServe paths' {model} and {version}: no allocation.
  boost::container::small_vector<std::pair<std::string_view, std::string>, 2> values;
  std::string_view Get(std::string_view name) const {
    for (const auto& [k, v] : values) {
      if (k == name) return v;
    }
    return {};
  }
};

// Builds `{"error": message}` with `status`.
Response MakeErrorResponse(Status status, std::string_view message, unsigned version = 11);
// Builds a JSON response.
Response MakeJsonResponse(Status status, std::string body, unsigned version = 11);
// Escapes a string for inclusion in a JSON string literal (without quotes).
void AppendJsonEscaped(std::string* out, std::string_view s);

// The producer's side of a response streamed piece by piece (chunked
// transfer encoding; text/event-stream is a content type on top). The
// server holds at most max_stream_buffer_bytes (plus one piece) that the
// client has not read yet: a slow reader makes the producer wait.
//
// Threading: Write and Close from any thread, one at a time.
class StreamWriter {
 public:
  virtual ~StreamWriter() = default;
  // Queues `data`. Returns true when the producer may go on at once; false
  // when the buffer is full: `resume` then runs once, from any thread, when
  // it has drained below half (or when the client is gone: see gone()).
  // Once the stream is gone or closed, the data is dropped and `resume`
  // runs at once.
  virtual bool Write(std::string data, std::function<void()> resume) = 0;
  // Ends the stream once everything queued is written.
  virtual void Close() = 0;
  // The client went away or a write failed; the request's cancellation
  // has fired.
  virtual bool gone() const = 0;
};

// Delivers a handler's response to its connection. Exactly one response is
// sent per request: the first Send wins, later ones are ignored, and if every
// copy of a Responder is dropped without a Send, the request is answered
// with 500 so that the connection never waits forever.
class Responder {
 public:
  using Sink = std::function<void(Response)>;
  // Starts a streamed response with `head`; see StartStream.
  using StreamSink = std::function<std::shared_ptr<StreamWriter>(Response head)>;

  // Where a request's Responder copies deliver: the server's side of one
  // request (one object per request: no allocation for the Responder).
  class Target {
   public:
    virtual ~Target() = default;
    // The request's cancellation; see Responder::cancellation().
    Cancellation& cancel() { return cancel_; }

   protected:
    // One of these runs once per request, from any thread: the answer, or
    // the head of a streamed one. DeliverStream returns the stream's
    // writer, or null when this target cannot stream (after answering 500).
    virtual void Deliver(Response&& response) = 0;
    virtual std::shared_ptr<StreamWriter> DeliverStream(Response head) = 0;

   private:
    friend class Responder;
    Cancellation cancel_;
    std::atomic<bool> sent_{false};
    std::atomic<int64_t> copies_{0};  // Responders that point here
  };

  explicit Responder(std::shared_ptr<Target> target);
  explicit Responder(Sink sink, StreamSink stream_sink = nullptr);
  Responder(const Responder& other);
  Responder(Responder&& other) noexcept;
  Responder& operator=(const Responder& other);
  Responder& operator=(Responder&& other) noexcept;
  ~Responder();

  void Send(Response&& response) const;
  // Instead of Send: answers with `head` (status and header fields; its
  // body and Content-Length are ignored) and a body written through the
  // returned writer, chunked. Null when an answer was sent already (or
  // this Responder cannot stream: then a 500 is sent).
  std::shared_ptr<StreamWriter> StartStream(Response head) const;
  // Raised by the server when the client closes its connection before the
  // answer is sent (a Send afterwards is dropped): work for this request
  // may stop. Lives as long as any copy of the Responder or of this pointer.
  std::shared_ptr<Cancellation> cancellation() const;

 private:
  // Lets go of target_; the last copy answers 500 if nothing was sent.
  void Release() noexcept;
  std::shared_ptr<Target> target_;
};

using Handler = std::function<void(Request&& request, const PathParams& params, Responder respond)>;

}  // namespace inferd::http

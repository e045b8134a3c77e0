#pragma once
// Router: maps (method, path) to a handler. Patterns are '/'-separated
// segments, literal or "{name}" capturing one segment. A path that matches
// no pattern is 404; one that matches a pattern with another method is 405
// with an Allow header. Segments are percent-decoded once, after the path
// is split, so an encoded '/' stays inside its segment; a malformed escape
// is 400. HEAD is served by the GET route (the server drops the body).
// Built once at startup, then read-only: safe to use from every I/O thread.

#include <cstdint>
#include <string>
#include <vector>

#include "http/types.h"

namespace inferd::http {

class Router {
 public:
  Router() = default;
  Router(const Router&) = delete;  // a thread's last route found names it by id
  Router& operator=(const Router&) = delete;

  void Add(Verb method, std::string pattern, Handler handler);

  struct Match {
    const Handler* handler = nullptr;  // null: see status
    PathParams params;
    // not_found, method_not_allowed or bad_request when handler is null
    Status status = Status::ok;
    std::string allow;  // for 405
    std::string error;  // for 400
  };
  // Each thread remembers its last found route (path, method and where the
  // parameters lie): a server's clients mostly repeat one path, which is
  // then matched by one comparison instead of split and compared segment
  // by segment. Percent-encoded paths are not remembered.
  Match Find(Verb method, std::string_view path) const;

 private:
  struct Segment {
    std::string text;  // the literal, or the parameter's name without braces
    bool param = false;
  };
  struct Route {
    Verb method;
    std::vector<Segment> segments;
    Handler handler;
  };
  std::vector<Route> routes_;
  // Indices into routes_ by segment count, in the order added: a lookup
  // compares only the patterns that can match.
  std::vector<std::vector<size_t>> by_count_;
  // Names this router and its routes for the per-thread memory of the last
  // route found: unique in the process, renewed by Add.
  uint64_t id_ = NewId();
  static uint64_t NewId();
};

}  // namespace inferd::http

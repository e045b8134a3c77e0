#pragma once
// Router: maps (method, path) to a handler. Patterns are '/'-separated
// segments, literal or "{name}" capturing one segment. A path that matches
// no pattern is 404; one that matches a pattern with another method is 405
// with an Allow header. Segments are percent-decoded once, after the path
// is split, so an encoded '/' stays inside its segment; a malformed escape
// is 400. HEAD is served by the GET route (the server drops the body).
// Built once at startup, then read-only: safe to use from every I/O thread.

#include <string>
#include <vector>

#include "http/types.h"

namespace inferd::http {

class Router {
 public:
  void Add(Verb method, std::string pattern, Handler handler);

  struct Match {
    const Handler* handler = nullptr;  // null: see status
    PathParams params;
    // not_found, method_not_allowed or bad_request when handler is null
    Status status = Status::ok;
    std::string allow;  // for 405
    std::string error;  // for 400
  };
  Match Find(Verb method, std::string_view path) const;

 private:
  struct Route {
    Verb method;
    std::vector<std::string> segments;
    Handler handler;
  };
  std::vector<Route> routes_;
};

}  // namespace inferd::http

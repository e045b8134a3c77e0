#pragma once
// Logging through spdlog. INFERD_LOG_* macros; errors that may repeat per
// request go through LogEveryN-style rate limiting (RateLimitedLog).

#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdint>
#include <string_view>

namespace inferd {

// Sends log lines to stderr (stdout is for the program's own output).
void InitLogging();

// Sets the global level from "trace|debug|info|warn|error|off"; false if unknown.
bool SetLogLevel(std::string_view level);

// Lets through at most one message per `interval_ms` (wall time) and counts
// the suppressed ones. Safe from any thread.
class RateLimitedLog {
 public:
  explicit RateLimitedLog(int64_t interval_ms = 1000) : interval_ms_(interval_ms) {}
  // Returns true when the caller should log now; *suppressed receives the
  // number of messages dropped since the last one that passed.
  bool ShouldLog(int64_t* suppressed);

 private:
  int64_t interval_ms_;
  std::atomic<int64_t> last_ms_{0};
  std::atomic<int64_t> suppressed_{0};
};

}  // namespace inferd

#define INFERD_LOG_DEBUG(...) spdlog::debug(__VA_ARGS__)
#define INFERD_LOG_INFO(...) spdlog::info(__VA_ARGS__)
#define INFERD_LOG_WARN(...) spdlog::warn(__VA_ARGS__)
#define INFERD_LOG_ERROR(...) spdlog::error(__VA_ARGS__)

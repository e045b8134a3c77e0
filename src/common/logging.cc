#include "common/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <chrono>
#include <string>

namespace inferd {

void InitLogging() { spdlog::set_default_logger(spdlog::stderr_color_mt("inferd")); }

bool SetLogLevel(std::string_view level) {
  auto lvl = spdlog::level::from_str(std::string(level));
  if (lvl == spdlog::level::off && level != "off") return false;
  spdlog::set_level(lvl);
  return true;
}

bool RateLimitedLog::ShouldLog(int64_t* suppressed) {
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  int64_t last = last_ms_.load(std::memory_order_relaxed);
  if (now - last >= interval_ms_ &&
      last_ms_.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    *suppressed = suppressed_.exchange(0, std::memory_order_relaxed);
    return true;
  }
  suppressed_.fetch_add(1, std::memory_order_relaxed);
  return false;
}

}  // namespace inferd

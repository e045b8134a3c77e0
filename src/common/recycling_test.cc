#include "common/recycling.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace inferd {
namespace {

struct Base {
  virtual ~Base() = default;
};

struct Exchange : Base, Recycled<Exchange> {
  std::string text = "an exchange";
  char room[200] = {};
};

struct Bigger : Exchange {
  char more[64] = {};
};

constexpr bool kRecycles = INFERD_RECYCLE != 0;  // off under AddressSanitizer

TEST(RecyclingTest, TheNextObjectTakesTheBlockTheLastOneLeft) {
  std::unique_ptr<Base> a(new Exchange);
  const void* first = a.get();
  a.reset();  // through the base: the sized delete of Exchange
  std::unique_ptr<Base> b(new Exchange);
  if (kRecycles) {
    EXPECT_EQ(b.get(), first);
  }
  // A second live object cannot share it; both are whole and usable.
  std::unique_ptr<Exchange> c(new Exchange);
  EXPECT_NE(static_cast<void*>(c.get()), static_cast<void*>(b.get()));
  EXPECT_EQ(c->text, "an exchange");
  EXPECT_EQ(static_cast<Exchange*>(b.get())->text, "an exchange");
}

TEST(RecyclingTest, ADerivedClassOfAnotherSizeUsesTheGlobalHeap) {
  std::unique_ptr<Base> a(new Exchange);
  const void* kept = a.get();
  a.reset();                              // kept
  std::unique_ptr<Base> big(new Bigger);  // too large for the kept block
  EXPECT_NE(static_cast<void*>(big.get()), kept);
  std::unique_ptr<Base> b(new Exchange);  // the kept block is still there
  if (kRecycles) {
    EXPECT_EQ(static_cast<void*>(b.get()), kept);
  }
}

TEST(RecyclingTest, SharedObjectsAndBuffersReuseTheirBlock) {
  auto a = std::allocate_shared<std::string>(RecyclingAllocator<std::string>(), "x");
  const void* first = a.get();
  a.reset();
  auto b = std::allocate_shared<std::string>(RecyclingAllocator<std::string>(), "y");
  if (kRecycles) {
    EXPECT_EQ(b.get(), first);
  }
  EXPECT_EQ(*b, "y");

  using Buffer = std::vector<char, RecyclingAllocator<char, 64>>;
  const void* data;
  {
    Buffer v;
    v.reserve(64);
    data = v.data();
  }
  Buffer w;
  w.reserve(64);
  if (kRecycles) {
    EXPECT_EQ(static_cast<const void*>(w.data()), data);
  }
  w.assign(100, 'z');  // grows past the kept size: the global heap
  EXPECT_EQ(w.size(), 100u);
  Buffer moved = std::move(w);
  EXPECT_EQ(moved.size(), 100u);
}

TEST(RecyclingTest, ABlockFreedOnAnotherThreadIsKeptOrFreedThere) {
  auto* x = new Exchange;
  std::thread t([x] {
    delete x;                               // kept by this thread...
    std::unique_ptr<Base> y(new Exchange);  // ...and taken back
    if (kRecycles) {
      EXPECT_EQ(static_cast<void*>(y.get()), static_cast<void*>(x));
    }
    y.reset();  // kept again: freed when the thread exits
  });
  t.join();
  std::unique_ptr<Exchange> z(new Exchange);
  EXPECT_EQ(z->text, "an exchange");
}

}  // namespace
}  // namespace inferd

#include "sched/batch_tensors.h"

#include <gtest/gtest.h>

#include <cstring>

namespace inferd {
namespace {

Tensor Floats(std::vector<float> v, Shape shape) {
  std::string bytes(v.size() * 4, '\0');
  std::memcpy(bytes.data(), v.data(), bytes.size());
  return Tensor::FromBytes(DataType::kFp32, std::move(shape), std::move(bytes));
}

std::vector<float> AsFloats(const Tensor& t) {
  std::vector<float> v(t.byte_size() / 4);
  std::memcpy(v.data(), t.data(), t.byte_size());
  return v;
}

TEST(BatchTensorsTest, ConcatenatesAlongTheBatchDimensionAndSplitsBack) {
  std::vector<std::vector<Tensor>> results(2);
  TaskBatch batch;
  batch.push_back(std::make_unique<Task>(
      std::vector<Tensor>{Floats({1, 2}, {1, 2})}, 1, "s",
      [&](StatusOr<std::vector<Tensor>> r, const TaskTimings&) { results[0] = *r; }));
  batch.push_back(std::make_unique<Task>(
      std::vector<Tensor>{Floats({3, 4, 5, 6}, {2, 2})}, 2, "s",
      [&](StatusOr<std::vector<Tensor>> r, const TaskTimings&) { results[1] = *r; }));
  BufferPool pool;
  auto in = ConcatBatchInputs(batch, &pool);
  ASSERT_TRUE(in.ok());
  ASSERT_EQ(in->size(), 1u);
  EXPECT_EQ((*in)[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(AsFloats((*in)[0]), (std::vector<float>{1, 2, 3, 4, 5, 6}));

  // The "model" doubles its input.
  std::vector<float> out = AsFloats((*in)[0]);
  for (float& f : out) f *= 2;
  CompleteBatch(batch, std::vector<Tensor>{Floats(out, {3, 2})});
  EXPECT_EQ(results[0][0].shape(), (Shape{1, 2}));
  EXPECT_EQ(AsFloats(results[0][0]), (std::vector<float>{2, 4}));
  EXPECT_EQ(results[1][0].shape(), (Shape{2, 2}));
  EXPECT_EQ(AsFloats(results[1][0]), (std::vector<float>{6, 8, 10, 12}));
}

TEST(BatchTensorsTest, SteadyStateReusesBuffers) {
  BufferPool pool;
  for (int round = 0; round < 10; ++round) {
    TaskBatch batch;
    for (int i = 0; i < 4; ++i) {
      batch.push_back(
          std::make_unique<Task>(std::vector<Tensor>{Floats({1, 2, 3}, {1, 3})}, 1, "s",
                                 [](StatusOr<std::vector<Tensor>>, const TaskTimings&) {}));
    }
    auto in = ConcatBatchInputs(batch, &pool);
    ASSERT_TRUE(in.ok());
    CompleteBatch(batch, InternalError("done"));
  }
  EXPECT_EQ(pool.allocations(), 1);
}

TEST(BatchTensorsTest, ErrorReachesEveryTask) {
  int errors = 0;
  TaskBatch batch;
  for (int i = 0; i < 3; ++i) {
    batch.push_back(std::make_unique<Task>(
        std::vector<Tensor>{Floats({1}, {1, 1})}, 1, "s",
        [&](StatusOr<std::vector<Tensor>> r, const TaskTimings&) { errors += !r.ok(); }));
  }
  CompleteBatch(batch, InternalError("boom"));
  EXPECT_EQ(errors, 3);
}

TEST(BatchTensorsTest, UnsplittableOutputIsAnError) {
  int errors = 0;
  TaskBatch batch;
  for (int i = 0; i < 2; ++i) {
    batch.push_back(std::make_unique<Task>(
        std::vector<Tensor>{Floats({1}, {1, 1})}, 1, "s",
        [&](StatusOr<std::vector<Tensor>> r, const TaskTimings&) { errors += !r.ok(); }));
  }
  CompleteBatch(batch, std::vector<Tensor>{Floats({1, 2, 3}, {3})});
  EXPECT_EQ(errors, 2);
}

}  // namespace
}  // namespace inferd

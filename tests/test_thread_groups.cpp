// One call's batch spread over the CPU threads (core/src/runtime/thread_groups.h):
// the plan, that the groups run concurrently each inside a parallel region
// and come back in item order, errors, and that the oneDNN products give the
// same result inside a group as outside it, each with a primitive of its own
// (a primitive splits its work for the threads it was made for).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/Parallel.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "nn/linear.h"
#include "runtime/thread_groups.h"

namespace {

using ruclip::detail::encode_on_thread_groups;
using ruclip::detail::plan_thread_groups;
using torch::Tensor;

TEST(ThreadGroups, Plan) {
  struct Case {
    int64_t items;
    int threads;
    int64_t groups, per_group;
  };
  for (const Case& c : {Case{8, 2, 2, 4}, Case{9, 2, 2, 4}, Case{5, 2, 2, 2}, Case{2, 2, 2, 1}, Case{1, 2, 0, 0},
                        Case{8, 1, 0, 0}, Case{8, 16, 0, 0}, Case{16, 16, 16, 1}, Case{35, 16, 16, 2}, Case{0, 2, 0, 0}}) {
    const auto plan = plan_thread_groups(c.items, c.threads);
    EXPECT_EQ(plan.groups, c.groups) << c.items << " items, " << c.threads << " threads";
    EXPECT_EQ(plan.per_group, c.per_group) << c.items << " items, " << c.threads << " threads";
    // Never more than threads - 1 items left for the shared pass.
    if (plan.groups > 0) {
      EXPECT_LT(c.items - plan.groups * plan.per_group, c.threads);
    }
  }
}

// With Debian's LibTorch and GCC the core's OpenMP runtime is LibTorch's own.
TEST(ThreadGroups, AvailableWhereLibTorchSharesTheOpenMpRuntime) {
  at::set_num_threads(2);
  const bool available = ruclip::detail::thread_groups_available();
#if !defined(RUCLIP_PIP_LIBTORCH) && !defined(__clang__)
  EXPECT_TRUE(available);
#endif
  std::cout << "thread groups " << (available ? "available" : "not available") << " in this build\n";
}

// Each group waits until every group has started: the call returns only if
// they run at the same time (the wait's timeout only guards against a hang).
// Without thread groups (a LibTorch with its own OpenMP runtime) the call is
// one call on all items.
TEST(ThreadGroups, GroupsRunTogetherInItemOrder) {
  at::set_num_threads(2);
  c10::InferenceMode inference;
  const bool available = ruclip::detail::thread_groups_available();
  std::mutex mutex;
  std::condition_variable all_started;
  int started = 0;
  std::atomic<int> grouped_calls{0}, shared_calls{0};
  const Tensor out = encode_on_thread_groups(9, [&](int64_t first, int64_t count) {
    if (at::in_parallel_region()) {
      EXPECT_EQ(count, 4);
      EXPECT_TRUE(c10::InferenceMode::is_enabled()) << "the caller's InferenceMode reaches the pool's threads";
      std::unique_lock<std::mutex> lock(mutex);
      ++started;
      all_started.notify_all();
      EXPECT_TRUE(all_started.wait_for(lock, std::chrono::seconds(60), [&] { return started == 2; }))
          << "the other group never started while this one ran";
      ++grouped_calls;
    } else if (available) {
      EXPECT_EQ(first, 8);
      EXPECT_EQ(count, 1);
      ++shared_calls;
    } else {
      EXPECT_EQ(first, 0);
      EXPECT_EQ(count, 9);
    }
    return torch::arange(first, first + count, torch::kInt64).view({count, 1}).repeat({1, 3});
  });
  EXPECT_EQ(grouped_calls.load(), available ? 2 : 0);
  EXPECT_EQ(shared_calls.load(), available ? 1 : 0);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{9, 3}));
  EXPECT_TRUE(out.equal(torch::arange(9, torch::kInt64).view({9, 1}).repeat({1, 3})));
}

TEST(ThreadGroups, FewerItemsThanThreadsIsOneCall) {
  at::set_num_threads(2);
  int calls = 0;
  const Tensor out = encode_on_thread_groups(1, [&](int64_t first, int64_t count) {
    ++calls;
    EXPECT_FALSE(at::in_parallel_region());
    return torch::full({count}, first);
  });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(out.numel(), 1);
}

TEST(ThreadGroups, AGroupsErrorReachesTheCaller) {
  at::set_num_threads(2);
  EXPECT_THROW(encode_on_thread_groups(4,
                                       [&](int64_t first, int64_t count) -> Tensor {
                                         // Item 2: the second group's, or the one call's without groups.
                                         if (first <= 2 && 2 < first + count) throw std::runtime_error("item 2 failed");
                                         return torch::zeros({count});
                                       }),
               std::runtime_error);
}

// The same rows through one layer outside any group (its primitive made for
// two threads) and inside each group (one thread): the same output, from two
// primitives.
TEST(ThreadGroups, OneDnnProductsInsideAGroupEqualOutside) {
  if (!ruclip::detail::onednn_available()) GTEST_SKIP() << "built without oneDNN";
  at::set_num_threads(2);
  c10::InferenceMode inference;
  using ruclip::detail::LinearKernel;
  for (LinearKernel kernel : {LinearKernel::kOneDnnF32, LinearKernel::kOneDnnInt8}) {
    if (!ruclip::detail::onednn_kernel_runs(kernel)) continue;
    torch::manual_seed(1);
    const ruclip::detail::Linear layer(torch::randn({768, 256}) * 0.05, torch::randn({768}), kernel);
    const Tensor x = torch::randn({2, 200, 256});
    // Row for row, each group's rows alone outside any group (2 threads).
    const Tensor outside = torch::cat({layer.forward(x[0]), layer.forward(x[1])});
    const Tensor inside = encode_on_thread_groups(2, [&](int64_t first, int64_t) { return layer.forward(x[first]); });
    EXPECT_LE((inside - outside).abs().max().item<float>(), 1e-4) << ruclip::detail::linear_kernel_name(kernel);
    EXPECT_EQ(layer.products_made(), ruclip::detail::thread_groups_available() ? 2u : 1u)
        << ruclip::detail::linear_kernel_name(kernel);
  }
}

}  // namespace

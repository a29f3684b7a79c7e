// Internal (LibTorch): one call's images spread over the CPU threads, one
// sub-batch per thread.
//
// Each of the towers' ops spreads its own work over all threads, which then
// wait for each other at every op's end, and where a step is serial (int8's
// activation range) the other threads idle. A thread that runs a sub-batch
// alone, every op in it on that thread, waits for nobody. int8 and bf16 gain
// most; float32's products already scale well over the threads
// (docs/performance.md).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>

namespace ruclip::detail {

// How `items` go over `threads`: `groups` sub-batches of `per_group` items
// (group g: items [g * per_group, (g + 1) * per_group)), each on its own
// thread, then the rest (items - groups * per_group, fewer than `threads`)
// on all threads together, one op at a time as before. No groups
// (groups = 0) with one thread or fewer items than threads: a group per
// thread with some threads idle would be slower than the ops' own split.
struct ThreadGroups {
  int64_t groups = 0, per_group = 0;
};
ThreadGroups plan_thread_groups(int64_t items, int threads);

// Whether LibTorch's ops see the regions at::parallel_for opens from here
// (false where the core is built without OpenMP or its OpenMP runtime is not
// LibTorch's): without it there are no groups. Settled once per process, at
// the first call that can open a region of two threads.
bool thread_groups_available();

// `encode(first, count)` on plan_thread_groups(items, LibTorch's threads):
// the groups concurrently, each on one thread of LibTorch's pool (the ops
// inside then run on that thread alone), the rest after them on all threads.
// Returns the results concatenated along dimension 0, in item order.
// Inside a parallel region (one thread already), with one thread, or
// without thread_groups_available(), it is `encode(0, items)`. An exception
// from any group is rethrown here. `encode` runs concurrently from several
// threads.
torch::Tensor encode_on_thread_groups(int64_t items, const std::function<torch::Tensor(int64_t first, int64_t count)>& encode);

}  // namespace ruclip::detail

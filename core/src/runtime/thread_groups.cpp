#include "runtime/thread_groups.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <vector>

namespace ruclip::detail {

bool thread_groups_available() {
#ifndef _OPENMP
  return false;  // at::parallel_for, inline, runs serially in a file built without OpenMP
#else
  // Inside at::parallel_for's region LibTorch's own ops must see the region
  // (and run serially), or each group would start a team of its own: the
  // case where this file's OpenMP runtime is not the one LibTorch asks (a
  // LibTorch that carries its own libgomp). Asked in a region of two, once
  // such a region could be opened.
  static std::atomic<int> known{-1};
  if (const int k = known.load(); k >= 0) return k == 1;
  if (at::in_parallel_region() || at::get_num_threads() < 2) return false;  // no region of two to ask in
  std::atomic<int> threads{0}, seen{0};
  at::parallel_for(0, 2, 1, [&](int64_t, int64_t) {
    ++threads;
    if (at::in_parallel_region()) ++seen;
  });
  if (threads.load() < 2) return false;  // a smaller team (OMP_THREAD_LIMIT, OMP_DYNAMIC): ask again later
  const bool available = seen.load() == 2;
  known.store(available ? 1 : 0);
  return available;
#endif
}

ThreadGroups plan_thread_groups(int64_t items, int threads) {
  if (threads < 2 || items < threads) return {};
  return {threads, items / threads};
}

torch::Tensor encode_on_thread_groups(int64_t items,
                                      const std::function<torch::Tensor(int64_t first, int64_t count)>& encode) {
  const int threads = at::in_parallel_region() || !thread_groups_available() ? 1 : at::get_num_threads();
  const ThreadGroups plan = plan_thread_groups(items, threads);
  if (plan.groups == 0) return encode(0, items);
  std::vector<torch::Tensor> parts(plan.groups);
  // InferenceMode is per thread: the pool's threads take the caller's.
  const bool inference = c10::InferenceMode::is_enabled();
  // Grain 1 over `groups` = threads indices: one group per pool thread.
  at::parallel_for(0, plan.groups, 1, [&](int64_t begin, int64_t end) {
    c10::InferenceMode guard(inference);
    for (int64_t g = begin; g < end; ++g) parts[g] = encode(g * plan.per_group, plan.per_group);
  });
  const int64_t grouped = plan.groups * plan.per_group;
  if (grouped < items) parts.push_back(encode(grouped, items - grouped));
  return torch::cat(parts);
}

}  // namespace ruclip::detail

// Internal: the process's CPU threads, shared by every model (LibTorch's
// OpenMP pool and OpenBLAS's threads are process-wide). Thread-safe.
#pragma once
#include <string>

namespace ruclip::detail {

// Uses `threads` CPU threads (0: all online CPUs) without oversubscribing:
// LibTorch's OpenMP pool and OpenBLAS's own threads would multiply (each
// spins while the other works), so only one of them gets `threads`, the
// other one thread.
//  - kBlas: OpenBLAS multithreads its products (training; the libtorch-blas
//    inference kernel), everything else runs on one thread.
//  - kOpenMp: LibTorch's OpenMP pool has the threads; oneDNN runs its
//    products there too.
// Process-wide, like the libraries' own settings.
enum class ThreadPlan { kBlas, kOpenMp };
void set_cpu_threads(int threads, ThreadPlan plan);

// The policy models load under, since every model of the process shares
// those pools: the first model loaded claims the setting (its num-threads,
// 0: all CPUs, and its kernel's plan) until the last model holding it is
// gone; models loaded meanwhile run with it and may not change it under the
// others. ruclip::set_process_cpu_threads (model.h) overrides it on purpose.
// Returns a warning for a model that asked for something else ("" when it got
// what it asked for); every claim is released once (release_cpu_threads).
// `threads_for_claim` is the count a model asking for `requested` will get.
// Thread-safe.
std::string claim_cpu_threads(int requested, ThreadPlan plan);
void release_cpu_threads();
int threads_for_claim(int requested);
// The warning claim_cpu_threads would give a model asking for `requested`
// now, without claiming ("" when it gets them): for a user of a model already loaded.
std::string cpu_threads_not_applied(int requested);
// Puts the claimed setting back after a measurement changed it (no-op before a claim).
void restore_claimed_cpu_threads();

}  // namespace ruclip::detail

// The CPU-thread policy models load under (cpu_threads.h), and
// ruclip::set_process_cpu_threads (options.h).
#include "runtime/cpu_threads.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <unistd.h>

#include <mutex>
#include <optional>

#include "ruclip/error.h"
#include "ruclip/options.h"

namespace ruclip::detail {

namespace {
int online_cpus() {
  const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  return cpus > 0 ? static_cast<int>(cpus) : 1;
}
}  // namespace

void set_cpu_threads(int threads, ThreadPlan plan) {
  if (threads <= 0) threads = online_cpus();
  // Looked up at run time: LibTorch may sit on another BLAS (MKL), or on the
  // reference BLAS when libopenblas0-pthread is missing.
  using SetThreads = void (*)(int);
  auto set_blas_threads = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  if (plan == ThreadPlan::kBlas && set_blas_threads) {
    set_blas_threads(threads);
    at::set_num_threads(1);
  } else {
    if (set_blas_threads) set_blas_threads(1);
    at::set_num_threads(threads);
  }
}

namespace {

// The setting every model of the process runs with.
struct ThreadClaim {
  int requested = 0;  // as asked (0: all CPUs)
  int threads = 0;    // what that resolved to
  ThreadPlan plan = ThreadPlan::kOpenMp;
  bool mixed = false;  // models on both kinds of kernel: both pools get the threads
};

std::mutex claim_mutex;
std::optional<ThreadClaim> claim;  // while models hold it
int claim_holders = 0;
int application_threads = -1;      // set_process_cpu_threads (-1: never called / cleared)

void apply(const ThreadClaim& c) {
  if (!c.mixed) {
    set_cpu_threads(c.threads, c.plan);
    return;
  }
  // Products on both OpenBLAS and oneDNN in one process: each pool gets the
  // threads (they take turns, op by op) rather than one kernel running on one.
  using SetThreads = void (*)(int);
  if (auto set_blas_threads = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads")))
    set_blas_threads(c.threads);
  at::set_num_threads(c.threads);
}

int resolve(int requested) { return requested > 0 ? requested : online_cpus(); }

// Why a model asking for `requested` threads runs with the claimed ones ("": it doesn't). Under claim_mutex.
std::string not_applied(int requested) {
  if (!claim || requested <= 0 || requested == claim->threads) return "";
  return "num-threads=" + std::to_string(requested) + " not applied: CPU threads are process-wide and the models "
         "already loaded in this process run with " + std::to_string(claim->threads) +
         (claim->requested ? "" : " (all CPUs)") + "; this one runs with those too";
}

}  // namespace

std::string claim_cpu_threads(int requested, ThreadPlan plan) {
  std::lock_guard<std::mutex> guard(claim_mutex);
  ++claim_holders;
  if (!claim) {
    const int wanted = application_threads >= 0 ? application_threads : requested;
    claim = ThreadClaim{wanted, resolve(wanted), plan, false};
    apply(*claim);
    if (application_threads >= 0 && requested > 0 && requested != claim->threads)
      return "num-threads=" + std::to_string(requested) + " not applied: the application set the process's CPU "
             "threads to " + std::to_string(claim->threads);
    return "";
  }
  const std::string warning = not_applied(requested);
  if (plan != claim->plan && !claim->mixed) {
    claim->mixed = true;
    apply(*claim);
  }
  return warning;
}

std::string cpu_threads_not_applied(int requested) {
  std::lock_guard<std::mutex> guard(claim_mutex);
  return not_applied(requested);
}

void release_cpu_threads() {
  std::lock_guard<std::mutex> guard(claim_mutex);
  if (claim_holders > 0 && --claim_holders == 0) claim.reset();
}

int threads_for_claim(int requested) {
  std::lock_guard<std::mutex> guard(claim_mutex);
  if (claim) return claim->threads;
  return resolve(application_threads >= 0 ? application_threads : requested);
}

void restore_claimed_cpu_threads() {
  std::lock_guard<std::mutex> guard(claim_mutex);
  if (claim) apply(*claim);
}

}  // namespace ruclip::detail

namespace ruclip {

void set_process_cpu_threads(int threads) {
  if (threads < 0) throw Error("CPU threads must be 0 (all CPUs) or positive");
  std::lock_guard<std::mutex> guard(detail::claim_mutex);
  detail::application_threads = threads;
  if (detail::claim) {
    detail::claim->requested = threads;
    detail::claim->threads = detail::resolve(threads);
    detail::apply(*detail::claim);
  }
}

int process_cpu_threads() { return detail::threads_for_claim(0); }

}  // namespace ruclip


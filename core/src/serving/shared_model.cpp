#include "ruclip/shared_model.h"

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>

#include "nn/clip_weights.h"
#include "runtime/cpu_threads.h"
#include "runtime/kernel_choice.h"

namespace ruclip {
namespace {

// One entry per key; its own mutex makes a second asker wait for the first
// one's load instead of loading again, without holding up other keys.
struct Entry {
  std::mutex load;
  std::weak_ptr<SharedModel> model;
};

std::mutex registry_mutex;
std::map<std::string, std::shared_ptr<Entry>>& registry() {
  static auto* r = new std::map<std::string, std::shared_ptr<Entry>>();  // never destroyed: used up to exit
  return *r;
}
std::atomic<uint64_t> loads{0};

std::string key_of(const std::string& model_dir, const ModelOptions& options, const std::string& instance_id) {
  std::error_code ec;
  std::string dir = std::filesystem::weakly_canonical(model_dir, ec).string();
  if (ec || dir.empty()) dir = model_dir;
  // "auto" and the device it resolves to are the same model.
  const std::string device = detail::to_torch_device(options.device).str();
  return instance_id + '\x1f' + dir + '\x1f' + device + '\x1f' + precision_name(options.precision);
}

}  // namespace

SharedModel::~SharedModel() = default;

long SharedModel::holders() const { return self_.use_count(); }

std::shared_ptr<SharedModel> acquire_shared_model(const std::string& model_dir, const ModelOptions& options,
                                                  const std::string& instance_id, std::vector<std::string>* warnings) {
  const std::string key = key_of(model_dir, options, instance_id);
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard<std::mutex> guard(registry_mutex);
    auto& r = registry();
    for (auto i = r.begin(); i != r.end();)  // forget models nobody holds (and nobody is loading)
      i = i->second.use_count() == 1 && i->second->model.expired() ? r.erase(i) : std::next(i);
    auto& slot = r[key];
    if (!slot) slot = std::make_shared<Entry>();
    entry = slot;
  }
  std::lock_guard<std::mutex> guard(entry->load);
  std::shared_ptr<SharedModel> shared = entry->model.lock();
  if (shared) {
    if (warnings) {
      // The loader's kernel warnings hold for this user too; its threads warning doesn't.
      const KernelReport& report = shared->model().kernels();
      warnings->clear();
      for (const auto& w : report.warnings)
        if (w != report.threads_warning) warnings->push_back(w);
      if (std::string w = detail::cpu_threads_not_applied(options.num_threads); !w.empty()) warnings->push_back(w);
    }
    return shared;
  }
  shared.reset(new SharedModel());
  shared->model_ = Model::load(model_dir, options);
  shared->scheduler_ = std::make_unique<InferenceScheduler>(*shared->model_);
  shared->instance_ = ++loads;
  shared->self_ = shared;
  entry->model = shared;
  if (warnings) *warnings = shared->model().kernels().warnings;
  return shared;
}

uint64_t shared_model_loads() { return loads; }

}  // namespace ruclip

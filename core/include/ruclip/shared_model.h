// One loaded model per process for everyone who asks for the same one: the
// GStreamer elements of 4 to 64 camera streams (and applications using the
// core API) share the weights, the label sets and one InferenceScheduler
// that batches their frames together.
//
// Thread-safe: acquire from any thread; the model is loaded once even when
// several threads ask at the same moment, and freed when the last holder
// drops its shared_ptr (close the streams opened on its scheduler first).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ruclip/model.h"
#include "ruclip/scheduler.h"

namespace ruclip {

class SharedModel {
 public:
  ~SharedModel();
  SharedModel(const SharedModel&) = delete;
  SharedModel& operator=(const SharedModel&) = delete;

  Model& model() { return *model_; }
  InferenceScheduler& scheduler() { return *scheduler_; }
  // Distinct for every model loaded in this process: holders that see the
  // same number share one copy of the weights.
  uint64_t instance() const { return instance_; }
  long holders() const;  // how many hold it now

  struct Impl;

 private:
  friend std::shared_ptr<SharedModel> acquire_shared_model(const std::string&, const ModelOptions&,
                                                           const std::string&, std::vector<std::string>*);
  SharedModel() = default;
  std::unique_ptr<Model> model_;
  std::unique_ptr<InferenceScheduler> scheduler_;  // destroyed before the model
  uint64_t instance_ = 0;
  std::weak_ptr<SharedModel> self_;
};

// The model of `model_dir` (the same folder however it is spelled) on
// options.device at options.precision: the one already loaded with the same
// `instance_id`, else a new load (Model::load; its errors). An instance_id
// other than "" keeps a separate instance, shared only with those naming the
// same id. options.num_threads is process-wide (model.h): `warnings` gets
// the model's load warnings and, when num_threads can't apply, why.
std::shared_ptr<SharedModel> acquire_shared_model(const std::string& model_dir, const ModelOptions& options = {},
                                                  const std::string& instance_id = "",
                                                  std::vector<std::string>* warnings = nullptr);

// How many models acquire_shared_model has loaded in this process.
uint64_t shared_model_loads();

}  // namespace ruclip

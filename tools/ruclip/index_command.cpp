// `ruclip index` and `ruclip search`: text (or image) search over video.
//
// index: each video is decoded by GStreamer and sampled as ruclipfilter's
// interval-time samples it (a frame is taken when it is --every seconds or
// more past the last one taken, by PTS); a pad probe drops the other frames
// before colour conversion, so only samples are converted to RGB. Samples are
// embedded in batches by the model and stored with a JPEG thumbnail in the
// SQLite index (video_index.h). Files already indexed and unchanged (same
// size, modification time and --every) are skipped.
//
// search: the query's normalized embedding (a text through the templates,
// as a label is; or an image) against every stored sample by an exact SIMD
// scan (vector_search.h); from the best sample down, each hit grows over the
// neighbouring samples of its file that score above the cut (--cut).
// --approximate takes the candidates from a FAISS IVF index kept next to the
// database (FILE.faiss; approximate_index.h) instead of the exact scan. The
// embeddings are read out of SQLite once and kept beside it as a matrix file
// that later searches map (FILE.f32.vectors / .f16.vectors; vector_cache.h).
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <unordered_map>

#include "cli.h"
#include "ruclip/error.h"
#include "ruclip/image.h"
#include "ruclip/tools/vector_search.h"
#include "ruclip/zero_shot.h"
#include "vector_cache.h"
#include "video_files.h"
#include "video_index.h"
#include "video_frame.h"
#ifdef RUCLIP_HAVE_FAISS
#include "approximate_index.h"
#endif

namespace ruclip_cli {
namespace {

namespace fs = std::filesystem;

constexpr int kThumbnailWidth = 192;
constexpr int kBatch = 8;
// A stored probe and the model's own agree to this cosine or better when the
// model is the same (whatever its precision: bf16 keeps >= 0.99); another
// model lands far below.
constexpr float kSameModelCosine = 0.98f;

// ---- the model an index is built with ---------------------------------------

// Embeddings of a fixed text and a fixed picture: what identifies the model
// (its folder may move, its file names differ between families).
std::vector<float> model_probe(ruclip::Model& model) {
  ruclip::Embeddings text = model.encode_text({"проверка модели: красный круг на синем фоне"});
  text.normalize_rows();
  const int w = 64, h = 48;
  std::vector<uint8_t> rgb(w * h * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      uint8_t* p = &rgb[(y * w + x) * 3];
      p[0] = static_cast<uint8_t>(x * 4);
      p[1] = static_cast<uint8_t>(y * 5);
      p[2] = static_cast<uint8_t>((x * y) & 0xFF);
    }
  ruclip::FrameView view;
  view.format = ruclip::PixelFormat::RGB;
  view.width = w;
  view.height = h;
  view.planes[0] = rgb.data();
  view.strides[0] = w * 3;
  ruclip::Embeddings image = model.encode_frames({view});
  image.normalize_rows();
  std::vector<float> out(text.data);
  out.insert(out.end(), image.data.begin(), image.data.end());
  return out;
}

// Throws when the index was built with another model than `model`.
void check_model(const VideoIndex& db, ruclip::Model& model, const std::string& model_dir) {
  const auto stored = db.info("model_probe");
  if (!stored) return;
  const std::string built_with = db.info("model").value_or("?");
  const std::vector<float> want = json::parse(*stored).get<std::vector<float>>();
  const std::vector<float> got = model_probe(model);
  const int dim = model.config().embed_dim;
  bool same = want.size() == got.size() && static_cast<int>(got.size()) == 2 * dim;
  for (int part = 0; same && part < 2; ++part) {
    float cos = 0;
    for (int i = 0; i < dim; ++i) cos += want[part * dim + i] * got[part * dim + i];
    same = cos >= kSameModelCosine;
  }
  if (!same)
    throw ruclip::Error("--db '" + db.path() + "' was built with the model '" + built_with + "'; --model '" +
                        model_dir + "' is another model (its embeddings differ): index into a new --db");
}

void record_model(VideoIndex& db, ruclip::Model& model, const std::string& model_dir) {
  if (db.info("model_probe")) return;
  db.set_info("model", fs::absolute(model_dir).lexically_normal().string());
  db.set_info("dim", std::to_string(model.config().embed_dim));
  db.set_info("model_probe", json(model_probe(model)).dump());
}

// ---- index -------------------------------------------------------------------

// Drops the frames ruclipfilter's interval-time would not analyze (the same rule).
struct Sampler {
  ruclip_gst::IntervalSampler rule;
  guint64 every = GST_SECOND;
};

GstPadProbeReturn sample_probe(GstPad*, GstPadProbeInfo* info, gpointer data) {
  auto* s = static_cast<Sampler*>(data);
  return s->rule.take(GST_BUFFER_PTS(GST_PAD_PROBE_INFO_BUFFER(info)), 1, s->every) ? GST_PAD_PROBE_OK
                                                                                     : GST_PAD_PROBE_DROP;
}

std::vector<uint8_t> jpeg_thumbnail(const uint8_t* rgb, int width, int height, int stride) {
  const cv::Mat frame(height, width, CV_8UC3, const_cast<uint8_t*>(rgb), stride);
  const int w = std::min(kThumbnailWidth, width);
  const int h = std::max(1, static_cast<int>(std::lround(static_cast<double>(height) * w / width)));
  cv::Mat small, bgr;
  cv::resize(frame, small, cv::Size(w, h), 0, 0, cv::INTER_AREA);
  cv::cvtColor(small, bgr, cv::COLOR_RGB2BGR);
  std::vector<uint8_t> out;
  cv::imencode(".jpg", bgr, out, {cv::IMWRITE_JPEG_QUALITY, 85});
  return out;
}

struct IndexSettings {
  double every = 1.0;
};

// The samples of one video; throws ruclip::Error with the user's reason.
std::vector<IndexedSample> sample_video(const std::string& file, ruclip::Model& model, const IndexSettings& s,
                                        double* duration) {
  VideoPipeline p("index");
  GstElement* convert = gst_element_factory_make("videoconvert", nullptr);
  GstElement* sink = gst_element_factory_make("appsink", nullptr);
  if (!convert || !sink) throw ruclip::Error("GStreamer elements missing (videoconvert, appsink: gstreamer1.0-plugins-base)");
  gst_bin_add_many(GST_BIN(p.pipeline), convert, sink, NULL);
  p.decode(file, convert);
  GstCaps* rgb = gst_caps_from_string("video/x-raw,format=RGB");
  // max-buffers bounds what waits here (a batch); the decoder waits meanwhile.
  g_object_set(sink, "caps", rgb, "sync", FALSE, "max-buffers", 2 * kBatch, NULL);
  gst_caps_unref(rgb);
  if (!gst_element_link(convert, sink)) throw ruclip::Error("cannot link videoconvert ! appsink");
  Sampler sampler;
  sampler.every = static_cast<guint64>(std::llround(s.every * 1e9));
  GstPad* pad = gst_element_get_static_pad(convert, "sink");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, sample_probe, &sampler, nullptr);
  gst_object_unref(pad);

  GstBus* bus = gst_element_get_bus(p.pipeline);
  std::unique_ptr<GstBus, void (*)(GstBus*)> bus_ref(bus, [](GstBus* b) { gst_object_unref(b); });
  gst_element_set_state(p.pipeline, GST_STATE_PLAYING);

  std::vector<IndexedSample> out;
  std::vector<GstSample*> batch;
  auto flush = [&]() {
    if (batch.empty()) return;
    std::vector<std::unique_ptr<ruclip_gst::MappedFrame>> frames;  // unmapped when the batch is done
    std::vector<ruclip::FrameView> views;
    try {
      for (GstSample* sample : batch) {
        GstVideoInfo info;
        if (!gst_video_info_from_caps(&info, gst_sample_get_caps(sample)))
          throw ruclip::Error("cannot read a decoded frame's caps");
        frames.push_back(std::make_unique<ruclip_gst::MappedFrame>(&info, gst_sample_get_buffer(sample)));
        ruclip::FrameView v;
        if (!frames.back()->view(&v)) throw ruclip::Error("cannot map a decoded frame");
        views.push_back(v);
      }
      ruclip::Embeddings e = model.encode_frames(views);
      e.normalize_rows();
      for (size_t i = 0; i < batch.size(); ++i) {
        IndexedSample sample;
        // Running time, not PTS: the time from the file's start, as `ruclip tag` reports it (an
        // MPEG-TS file's PTS and stream time start at its mux delay).
        const GstClockTime pts = GST_BUFFER_PTS(gst_sample_get_buffer(batch[i]));
        const GstClockTime t = GST_CLOCK_TIME_IS_VALID(pts)
            ? gst_segment_to_running_time(gst_sample_get_segment(batch[i]), GST_FORMAT_TIME, pts) : GST_CLOCK_TIME_NONE;
        sample.time = GST_CLOCK_TIME_IS_VALID(t) ? t / 1e9 : (out.empty() ? 0 : out.back().time);
        sample.embedding.assign(e.row(static_cast<int>(i)), e.row(static_cast<int>(i)) + e.dim);
        sample.thumbnail = jpeg_thumbnail(views[i].planes[0], views[i].width, views[i].height, views[i].strides[0]);
        out.push_back(std::move(sample));
      }
    } catch (...) {
      frames.clear();
      for (GstSample* sample : batch) gst_sample_unref(sample);
      batch.clear();
      throw;
    }
    frames.clear();
    for (GstSample* sample : batch) gst_sample_unref(sample);
    batch.clear();
  };

  const bool progress = isatty(STDERR_FILENO);
  const auto started = std::chrono::steady_clock::now();
  auto last_progress = started;
  std::string error;
  for (bool done = false; !done;) {
    if (GstSample* sample = gst_app_sink_try_pull_sample(GST_APP_SINK(sink), 50 * GST_MSECOND)) {
      batch.push_back(sample);
      if (batch.size() >= static_cast<size_t>(kBatch)) flush();
    } else if (gst_app_sink_is_eos(GST_APP_SINK(sink))) {
      done = true;
    }
    while (GstMessage* m = gst_bus_pop(bus)) {
      if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
        GError* err = nullptr;
        gst_message_parse_error(m, &err, nullptr);
        error = p.error_text(bus, err);
        g_clear_error(&err);
        done = true;
      } else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT) {
        p.note_element_message(gst_message_get_structure(m));
      } else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS) {
        // The appsink's own EOS is what ends the loop (its samples come first).
      }
      gst_message_unref(m);
    }
    if (progress && std::chrono::steady_clock::now() - last_progress > std::chrono::milliseconds(500)) {
      last_progress = std::chrono::steady_clock::now();
      print_progress(file, pipeline_position(p.pipeline), pipeline_duration(p.pipeline), out.size() + batch.size(),
                     started);
    }
  }
  if (progress) std::cerr << "\r\033[K" << std::flush;
  if (error.empty()) flush();
  for (GstSample* sample : batch) gst_sample_unref(sample);
  *duration = pipeline_duration(p.pipeline);
  if (error.empty() && !p.linked_video) error = "no video stream";
  if (error.empty() && out.empty()) error = "no frames decoded";
  if (!error.empty()) throw ruclip::Error(error);
  return out;
}

int64_t mtime_ns(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

int index(const Args& args) {
  const std::string model_dir = args.required("model");
  const std::string db_path = args.required("db");
  IndexSettings s;
  s.every = args.number("every", 1.0);
  if (s.every <= 0) throw UsageError("option --every: must be above 0 seconds");
  const std::vector<std::string> files = expand_video_inputs(args.positional);
  if (files.empty()) throw UsageError("no video files (give files or folders of them)");

  auto model = load_model(args);
  VideoIndex db(db_path, /*create=*/true);
  check_model(db, *model, model_dir);
  record_model(db, *model, model_dir);
  gst_init(nullptr, nullptr);

  json report = json::array();
  int failed = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string& file = files[i];
    const std::string path = fs::absolute(file).lexically_normal().string();
    json entry{{"file", file}};
    std::error_code ec;
    IndexedFile record;
    record.path = path;
    record.every = s.every;
    if (!fs::is_regular_file(file, ec)) {
      entry["status"] = "failed";
      entry["error"] = file + ": no such file";
    } else {
      record.size = static_cast<int64_t>(fs::file_size(file, ec));
      record.mtime_ns = mtime_ns(file);
      const auto old = db.file(path);
      if (old && old->size == record.size && old->mtime_ns == record.mtime_ns && old->every == record.every) {
        entry["status"] = "unchanged";
        entry["samples"] = old->samples;
        std::cerr << "ruclip index: [" << i + 1 << "/" << files.size() << "] " << file << ": unchanged, skipped\n";
      } else {
        try {
          const std::vector<IndexedSample> samples = sample_video(file, *model, s, &record.duration);
          db.put_file(record, samples);
          entry["status"] = old ? "updated" : "indexed";
          entry["samples"] = samples.size();
          std::cerr << "ruclip index: [" << i + 1 << "/" << files.size() << "] " << file << ": " << samples.size()
                    << " samples\n";
        } catch (const ruclip::Error& e) {
          const std::string what = e.what();
          if (what.rfind("--db", 0) == 0) throw;  // the database itself failed: stop
          entry["status"] = "failed";
          entry["error"] = file + ": " + what;
        }
      }
    }
    if (entry["status"] == "failed") {
      ++failed;
      std::cerr << "ruclip index: " << entry["error"].get<std::string>() << " (skipped)\n";
    }
    report.push_back(std::move(entry));
  }
  std::cout << json{{"db", db_path}, {"samples", db.sample_count()}, {"files", report}}.dump() << "\n";
  return failed ? 1 : 0;
}

// ---- search ------------------------------------------------------------------

struct Hit {
  int64_t file_id = 0;
  size_t first = 0, last = 0, peak = 0;  // rows of the matrix
  float score = 0;
};

std::string clock_text(double t) {
  const long long ms = std::llround(std::max(0.0, t) * 1000);
  char buf[32];
  if (ms >= 3600000)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld.%lld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60,
                  ms % 1000 / 100);
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld.%lld", ms / 60000, ms / 1000 % 60, ms % 1000 / 100);
  return buf;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

void write_file(const fs::path& path, const void* data, size_t size, const std::string& option) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  f.close();
  if (!f) throw ruclip::Error("--" + option + " '" + path.string() + "': cannot write");
}

// OUT.html and its thumbnails in OUT_files/, referenced relatively: the
// page opens from the disk, offline, wherever the pair is moved.
void write_html(const std::string& out, const std::string& query, const json& hits, const VideoIndex& db) {
  const fs::path page(out);
  const fs::path folder_name = page.stem().string() + "_files";
  const fs::path folder = page.parent_path() / folder_name;
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec) throw ruclip::Error("--html '" + out + "': cannot create " + folder.string() + ": " + ec.message());
  std::string body;
  int n = 0;
  for (const auto& h : hits) {
    const std::vector<uint8_t> jpeg = db.thumbnail(h["sample"].get<int64_t>());
    const std::string name = "hit-" + std::to_string(++n) + ".jpg";
    write_file(folder / name, jpeg.data(), jpeg.size(), "html");
    char score[32];
    std::snprintf(score, sizeof score, "%.3f", h["score"].get<double>());
    body += "<figure><img src=\"" + html_escape((folder_name / name).string()) + "\" alt=\"\"><figcaption><b>" +
            std::to_string(n) + ".</b> " + html_escape(fs::path(h["file"].get<std::string>()).filename().string()) +
            "<br>" + clock_text(h["start"]) + " – " + clock_text(h["end"]) + " · " + score + "</figcaption></figure>\n";
  }
  const std::string html =
      "<!DOCTYPE html>\n<html lang=\"ru\"><head><meta charset=\"utf-8\"><title>ruclip search: " + html_escape(query) +
      "</title>\n<style>body{font-family:sans-serif;margin:1.5em}figure{display:inline-block;margin:.5em;"
      "vertical-align:top;width:200px}img{width:192px;border:1px solid #ccc}figcaption{font-size:90%}</style>"
      "</head>\n<body><h1>" + html_escape(query) + "</h1>\n<p>" + std::to_string(hits.size()) + " hits in " +
      html_escape(db.path()) + "</p>\n" + body + "</body></html>\n";
  write_file(page, html.data(), html.size(), "html");
}

// What the files derived from the samples (FILE.faiss, FILE.*.vectors) were
// made for: the samples' count, ids and dimension. Samples are only ever
// added, or a file's replaced with new ids, so any change changes it.
std::string samples_key(const std::vector<SampleRef>& refs, int dim) {
  int64_t id_sum = 0, id_max = 0;
  for (const auto& r : refs) {
    id_sum += r.id;
    id_max = std::max(id_max, r.id);
  }
  return std::to_string(refs.size()) + " " + std::to_string(id_max) + " " + std::to_string(id_sum) + " " +
         std::to_string(dim);
}

// The stored embeddings as a matrix of `storage`: the vector file beside the
// database, mapped, when it was made for these samples; otherwise read out of
// SQLite and the vector file (re)written for the next search.
MappedVectors load_vectors(const VideoIndex& db, const std::vector<SampleRef>& refs, const std::string& key, int dim,
                           ruclip::VectorStorage storage) {
  const std::string path =
      db.path() + (storage == ruclip::VectorStorage::kFloat16 ? ".f16.vectors" : ".f32.vectors");
  if (auto mapped = map_vectors(path, key, storage, refs.size(), dim)) return std::move(*mapped);
  MappedVectors out{ruclip::VectorMatrix(dim, storage), std::vector<double>(dim, 0.0)};
  out.matrix.reserve(refs.size());
  const std::vector<SampleRef> read = db.read_embeddings(dim, [&](const float* e) {
    out.matrix.add(e);
    for (int i = 0; i < dim; ++i) out.column_sum[i] += e[i];
  });
  if (read.size() != refs.size() || !std::equal(read.begin(), read.end(), refs.begin(), [](auto& a, auto& b) {
        return a.id == b.id;
      }))
    throw ruclip::Error("--db '" + db.path() + "' changed while it was read (is an index run writing it?)");
  if (!refs.empty()) {
    try {
      write_vectors(path, key, out.matrix, out.column_sum);
    } catch (const ruclip::Error& e) {
      std::cerr << "ruclip search: warning: " << e.what() << " (the next search reads the database again)\n";
    }
  }
  return out;
}

// The best `n` rows by the approximate index next to the database (built,
// and saved for the next search, when missing or made for other samples).
std::vector<ruclip::VectorHit> approximate_candidates(const std::string& path, const std::vector<SampleRef>& refs,
                                                      const std::string& key, const ruclip::VectorMatrix& matrix,
                                                      const std::vector<float>& query, size_t n, int nprobe) {
#ifdef RUCLIP_HAVE_FAISS
  if (refs.empty()) return {};
  const int dim = matrix.dim();
  std::unique_ptr<ApproximateIndex> index = ApproximateIndex::load(path, key);
  if (!index) {
    std::cerr << "ruclip search: building the approximate index of " << refs.size() << " samples (" << path << ")\n";
    std::vector<int64_t> ids;
    for (const auto& r : refs) ids.push_back(r.id);
    std::vector<float> rows(refs.size() * dim);  // FAISS takes float32
    if (matrix.storage() == ruclip::VectorStorage::kFloat32) {
      std::memcpy(rows.data(), matrix.data(), rows.size() * sizeof(float));
    } else {
      const auto* halves = static_cast<const uint16_t*>(matrix.data());
      for (size_t i = 0; i < rows.size(); ++i) rows[i] = ruclip::half_to_float(halves[i]);
    }
    index = ApproximateIndex::build(rows.data(), ids.data(), refs.size(), dim);
    try {
      index->save(path, key);
    } catch (const ruclip::Error& e) {
      std::cerr << "ruclip search: warning: " << e.what() << " (it is built again next time)\n";
    }
  }
  if (nprobe > 0) index->set_nprobe(nprobe);
  std::unordered_map<int64_t, size_t> row_of;
  for (size_t i = 0; i < refs.size(); ++i) row_of[refs[i].id] = i;
  // Scored again by the exact scan's kernel and put in its order (ties: lower
  // row first), so that where the candidates are the same, so are the hits.
  std::vector<ruclip::VectorHit> out;
  for (const auto& h : index->top(query.data(), n)) {
    const size_t row = row_of.at(h.id);
    out.push_back({row, matrix.dot(row, query.data())});
  }
  std::sort(out.begin(), out.end(), [](const ruclip::VectorHit& a, const ruclip::VectorHit& b) {
    return a.score > b.score || (a.score == b.score && a.row < b.row);
  });
  return out;
#else
  (void)path, (void)refs, (void)key, (void)matrix, (void)query, (void)n, (void)nprobe;
  throw ruclip::Error("--approximate: this ruclip was built without FAISS (Debian libfaiss-dev)");
#endif
}

int search(const Args& args) {
  const std::string db_path = args.required("db");
  const std::string image = args.one("image");
  if (image.empty() && args.positional.size() != 1)
    throw UsageError(args.positional.empty() ? "search needs a TEXT or --image FILE"
                                             : "search takes one TEXT (quote it); got " +
                                                   std::to_string(args.positional.size()) + " arguments");
  if (!image.empty() && !args.positional.empty()) throw UsageError("give a TEXT or --image, not both");
  const int top = args.integer("top", 10);
  ruclip::VectorStorage storage;
  try {
    storage = ruclip::parse_vector_storage(args.one("storage", "float32"));
  } catch (const ruclip::Error& e) {
    throw UsageError(std::string("option --storage: ") + e.what());
  }

  VideoIndex db(db_path, /*create=*/false);
  const auto stored_model = db.info("model");
  if (!stored_model) throw ruclip::Error("--db '" + db_path + "' holds no samples yet (ruclip index adds them)");
  const std::string model_dir = args.one("model", *stored_model);
  auto model = ruclip::Model::load(model_dir, model_options(args));
  print_warnings(*model);
  check_model(db, *model, model_dir);
  const int dim = model->config().embed_dim;

  std::vector<float> query;
  std::string query_text;
  if (image.empty()) {
    query_text = args.positional[0];
    const auto set = ruclip::build_label_set(*model, {query_text}, args.all("template"));
    query.assign(set->text.row(0), set->text.row(0) + dim);
  } else {
    query_text = image;
    const ruclip::Embeddings e = image_embeddings(*model, {image});
    query.assign(e.row(0), e.row(0) + dim);
  }

  const std::vector<SampleRef> refs = db.read_refs();
  const std::string key = samples_key(refs, dim);
  const MappedVectors vectors = load_vectors(db, refs, key, dim, storage);
  const ruclip::VectorMatrix& matrix = vectors.matrix;
  const std::vector<double>& sum = vectors.column_sum;
  const bool approximate = args.flag("approximate");
  std::map<int64_t, IndexedFile> files;
  for (auto& f : db.files()) files[f.id] = f;

  // The cut: given, or halfway between the best sample and the average one
  // (the mean embedding's score), so that it adapts to how far apart a
  // model's matching and unrelated scores lie, for texts and images alike.
  const size_t wanted = std::max<size_t>(64, static_cast<size_t>(top) * 16);
  const std::vector<ruclip::VectorHit> candidates =
      approximate ? approximate_candidates(db_path + ".faiss", refs, key, matrix, query, wanted, args.integer("nprobe", 0))
                  : matrix.top(query.data(), wanted);
  float cut = static_cast<float>(args.number("cut", -2));
  if (cut < -1 && !candidates.empty()) {
    double mean = 0;
    for (int i = 0; i < dim; ++i) mean += sum[i] / refs.size() * query[i];
    cut = static_cast<float>((candidates[0].score + mean) / 2);
  }
  // Peaks first; a peak above the cut grows over the neighbouring samples of
  // its file above it; a peak already inside an earlier hit is part of it.
  std::vector<Hit> hits;
  std::vector<bool> used(refs.size(), false);
  auto joins = [&](size_t row, int64_t file_id) {
    return refs[row].file_id == file_id && !used[row] && matrix.dot(row, query.data()) >= cut;
  };
  for (const ruclip::VectorHit& c : candidates) {
    if (static_cast<int>(hits.size()) >= top) break;
    if (used[c.row]) continue;
    Hit h{refs[c.row].file_id, c.row, c.row, c.row, c.score};
    if (c.score >= cut) {
      while (h.first > 0 && joins(h.first - 1, h.file_id)) --h.first;
      while (h.last + 1 < refs.size() && joins(h.last + 1, h.file_id)) ++h.last;
    }
    for (size_t r = h.first; r <= h.last; ++r) used[r] = true;
    hits.push_back(h);
  }

  json out_hits = json::array();
  for (const Hit& h : hits) {
    const IndexedFile& f = files.at(h.file_id);
    // A hit lasts until the next sample would have been taken (or the end).
    double end = refs[h.last].time + f.every;
    if (f.duration > 0) end = std::min(end, f.duration);
    out_hits.push_back({{"file", f.path}, {"start", refs[h.first].time}, {"end", end}, {"time", refs[h.peak].time},
                        {"score", h.score}, {"samples", h.last - h.first + 1}, {"sample", refs[h.peak].id}});
  }
  if (!args.one("html").empty()) write_html(args.one("html"), query_text, out_hits, db);
  json out{{"db", db_path}, {"model", model_dir}, {"samples", refs.size()}, {"storage", ruclip::vector_storage_name(storage)},
           {"hits", out_hits}};
  if (image.empty())
    out["query"] = query_text;
  else
    out["image"] = image;
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace

const Command kIndex{"index",
                     "ruclip index --model DIR --db FILE [--every SECONDS] VIDEO|FOLDER...",
                     {"model", "db", "every", "device", "threads", "precision"},
                     index};
const Command kSearch{"search",
                      "ruclip search --db FILE (TEXT | --image FILE) [--top N] [--html OUT.html] [--template T]... "
                      "[--cut COSINE] [--storage float32|float16] [--approximate [--nprobe N]] [--model DIR]",
                      {"db", "image", "top", "html", "template", "cut", "storage", "nprobe", "model", "device",
                       "threads", "precision"},
                      search, {"approximate"}};

}  // namespace ruclip_cli

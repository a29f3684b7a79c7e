// `ruclip index`, `ruclip search` and `ruclip prune`: text (or image) search
// over video files and live cameras (the ruclipindex element writes those).
//
// index: each video is decoded by GStreamer and sampled as ruclipfilter's
// interval-time samples it (a frame is taken when it is --every seconds or
// more past the last one taken, by PTS); a pad probe drops the other frames
// before colour conversion, so only samples are converted to RGB. Samples are
// embedded in batches by the model and stored with a JPEG thumbnail in the
// index (ruclip/index/store.h: a SQLite file or PostgreSQL). Files already
// indexed and unchanged (same size, modification time and --every) are
// skipped.
//
// search: the query's normalized embedding (a text through the templates,
// as a label is; or an image) against every stored sample by an exact SIMD
// scan (vector_search.h); from the best sample down, each hit grows over the
// neighbouring samples of its source (a file; a camera, in wall-clock time)
// that score above the cut (--cut); --camera, --since and --until restrict
// the rows scanned. --approximate takes the candidates from a FAISS IVF index kept next to the
// database (FILE.faiss; approximate_index.h) instead of the exact scan. The
// embeddings are read out of the index once and kept as a matrix file that
// later searches map and bring up to date with the rows added since
// (synced_rows.h). prune removes camera samples older than a time.
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
#include "ruclip/index/store.h"
#include "synced_rows.h"
#include "vector_cache.h"
#include "video_files.h"
#include "video_frame.h"
#ifdef RUCLIP_HAVE_FAISS
#include "approximate_index.h"
#endif

namespace ruclip_cli {
namespace {

namespace fs = std::filesystem;
using ruclip::index::Store;
using ruclip::index::SampleRow;

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
void check_model(Store& db, ruclip::Model& model, const std::string& model_dir) {
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
    throw ruclip::Error("--db '" + db.location() + "' was built with the model '" + built_with + "'; --model '" +
                        model_dir + "' is another model (its embeddings differ): index into a new --db");
}

// The first writer's model is the index's (ruclipindex elements record the
// folder and dimension only: they have no model of their own to probe).
void record_model(Store& db, ruclip::Model& model, const std::string& model_dir) {
  db.info_or_set("model", fs::absolute(model_dir).lexically_normal().string());
  const std::string dim = db.info_or_set("dim", std::to_string(model.config().embed_dim));
  if (dim != std::to_string(model.config().embed_dim))
    throw ruclip::Error("--db '" + db.location() + "' holds " + dim + "-dimensional embeddings; --model '" +
                        model_dir + "' makes " + std::to_string(model.config().embed_dim) + ": index into a new --db");
  db.info_or_set("model_probe", json(model_probe(model)).dump());
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
std::vector<ruclip::index::Sample> sample_video(const std::string& file, ruclip::Model& model, const IndexSettings& s,
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

  std::vector<ruclip::index::Sample> out;
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
        ruclip::index::Sample sample;
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
  std::unique_ptr<Store> store = Store::open(db_path, /*create=*/true);
  Store& db = *store;
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
    ruclip::index::Source record;
    record.name = path;
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
          const std::vector<ruclip::index::Sample> samples = sample_video(file, *model, s, &record.duration);
          db.put_file(record, samples);
          entry["status"] = old ? "updated" : "indexed";
          entry["samples"] = samples.size();
          std::cerr << "ruclip index: [" << i + 1 << "/" << files.size() << "] " << file << ": " << samples.size()
                    << " samples\n";
        } catch (const ruclip::Error& e) {
          const std::string what = e.what();
          if (what.rfind("index '", 0) == 0) throw;  // the database itself failed: stop
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
  std::cout << json{{"db", db.location()}, {"samples", db.sample_count()}, {"files", report}}.dump() << "\n";
  return failed ? 1 : 0;
}

// ---- search ------------------------------------------------------------------

// A hit: a run of neighbouring samples of one source (a file, or a camera
// in time) above the cut, around its best one.
struct Hit {
  int64_t source_id = 0;
  size_t first = 0, last = 0, peak = 0;  // positions in the (source, time) order
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
void write_html(const std::string& out, const std::string& query, const json& hits, Store& db) {
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
    const std::string where =
        h.contains("camera") ? html_escape(h["camera"].get<std::string>()) + "<br>" +
                                   html_escape(h["start_wall_time"].get<std::string>()) + " – " +
                                   html_escape(h["end_wall_time"].get<std::string>())
                             : html_escape(fs::path(h["file"].get<std::string>()).filename().string()) + "<br>" +
                                   clock_text(h["start"]) + " – " + clock_text(h["end"]);
    body += "<figure><img src=\"" + html_escape((folder_name / name).string()) + "\" alt=\"\"><figcaption><b>" +
            std::to_string(n) + ".</b> " + where + " · " + score + "</figcaption></figure>\n";
  }
  const std::string html =
      "<!DOCTYPE html>\n<html lang=\"ru\"><head><meta charset=\"utf-8\"><title>ruclip search: " + html_escape(query) +
      "</title>\n<style>body{font-family:sans-serif;margin:1.5em}figure{display:inline-block;margin:.5em;"
      "vertical-align:top;width:200px}img{width:192px;border:1px solid #ccc}figcaption{font-size:90%}</style>"
      "</head>\n<body><h1>" + html_escape(query) + "</h1>\n<p>" + std::to_string(hits.size()) + " hits in " +
      html_escape(db.location()) + "</p>\n" + body + "</body></html>\n";
  write_file(page, html.data(), html.size(), "html");
}

// The best `n` rows by the approximate index next to the database (built,
// and saved for the next search, when missing or made for other rows).
std::vector<ruclip::VectorHit> approximate_candidates(const std::string& path, const std::vector<SampleRow>& rows,
                                                      const ruclip::VectorMatrix& matrix, const std::vector<float>& query,
                                                      size_t n, int nprobe, int64_t generation) {
#ifdef RUCLIP_HAVE_FAISS
  if (rows.empty()) return {};
  const int dim = matrix.dim();
  const std::string key = "generation " + std::to_string(generation) + " rows " + std::to_string(rows.size()) +
                          " last " + std::to_string(rows.back().id) + " dim " + std::to_string(dim);
  std::unique_ptr<ApproximateIndex> index = ApproximateIndex::load(path, key);
  if (!index) {
    std::cerr << "ruclip search: building the approximate index of " << rows.size() << " samples (" << path << ")\n";
    std::vector<int64_t> ids;
    for (const auto& r : rows) ids.push_back(r.id);
    std::vector<float> values(rows.size() * dim);  // FAISS takes float32
    if (matrix.storage() == ruclip::VectorStorage::kFloat32) {
      std::memcpy(values.data(), matrix.data(), values.size() * sizeof(float));
    } else {
      const auto* halves = static_cast<const uint16_t*>(matrix.data());
      for (size_t i = 0; i < values.size(); ++i) values[i] = ruclip::half_to_float(halves[i]);
    }
    index = ApproximateIndex::build(values.data(), ids.data(), rows.size(), dim);
    try {
      index->save(path, key);
    } catch (const ruclip::Error& e) {
      std::cerr << "ruclip search: warning: " << e.what() << " (it is built again next time)\n";
    }
  }
  if (nprobe > 0) index->set_nprobe(nprobe);
  std::unordered_map<int64_t, size_t> row_of;
  for (size_t i = 0; i < rows.size(); ++i) row_of[rows[i].id] = i;
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
  (void)path, (void)rows, (void)matrix, (void)query, (void)n, (void)nprobe, (void)generation;
  throw ruclip::Error("--approximate: this ruclip was built without FAISS (Debian libfaiss-dev)");
#endif
}

// A camera sample's place in time: its wall-clock time; a file's: its offset.
double order_time(const SampleRow& r) {
  return r.wall_time != ruclip::index::kNoWallTime ? r.wall_time / 1e6 : r.time;
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
  const int64_t now = ruclip::index::wall_clock_now();
  const std::string since_text = args.one("since"), until_text = args.one("until");
  const int64_t since = since_text.empty() ? INT64_MIN : ruclip::index::parse_time(since_text, now, "--since");
  const int64_t until = until_text.empty() ? INT64_MAX : ruclip::index::parse_time(until_text, now, "--until");
  const std::vector<std::string> cameras = args.all("camera");

  std::unique_ptr<Store> store = Store::open(db_path, /*create=*/false);
  Store& db = *store;
  const auto stored_model = db.info("model");
  if (!stored_model) throw ruclip::Error("--db '" + db.location() + "' holds no samples yet (ruclip index or ruclipindex add them)");
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

  const int64_t generation = db.generation();
  const SyncedRows synced = sync_rows(db, rows_cache_base(db_path, db), dim, storage);
  const std::vector<SampleRow>& rows = synced.rows;
  const ruclip::VectorMatrix& matrix = synced.vectors.matrix;
  const std::vector<double>& sum = synced.vectors.column_sum;
  std::map<int64_t, ruclip::index::Source> sources;
  for (auto& src : db.sources()) sources[src.id] = src;
  for (const std::string& c : cameras) {
    const bool known = std::any_of(sources.begin(), sources.end(), [&](const auto& s) {
      return s.second.kind == ruclip::index::Source::Kind::kCamera && s.second.name == c;
    });
    if (!known) throw ruclip::Error("--camera '" + c + "': no such camera in --db '" + db.location() + "'");
  }

  // The rows the filters keep (--camera, --since/--until: cameras only).
  const bool filtered = !cameras.empty() || !since_text.empty() || !until_text.empty();
  std::vector<uint8_t> keep;
  if (filtered) {
    keep.resize(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) {
      const SampleRow& r = rows[i];
      const auto& src = sources[r.source_id];
      bool k = cameras.empty() || (src.kind == ruclip::index::Source::Kind::kCamera &&
                                   std::find(cameras.begin(), cameras.end(), src.name) != cameras.end());
      if (!since_text.empty() || !until_text.empty())
        k = k && r.wall_time != ruclip::index::kNoWallTime && r.wall_time >= since && r.wall_time <= until;
      keep[i] = k;
    }
  }
  // Neighbours in time: the rows in (source, time, id) order.
  std::vector<size_t> order(rows.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const SampleRow &x = rows[a], &y = rows[b];
    if (x.source_id != y.source_id) return x.source_id < y.source_id;
    const double tx = order_time(x), ty = order_time(y);
    return tx != ty ? tx < ty : x.id < y.id;
  });
  std::vector<size_t> position(rows.size());
  for (size_t i = 0; i < order.size(); ++i) position[order[i]] = i;

  const bool approximate = args.flag("approximate");
  if (approximate && filtered) throw UsageError("--approximate takes no --camera, --since or --until");
  // The cut: given, or halfway between the best sample and the average one
  // (the mean embedding's score), so that it adapts to how far apart a
  // model's matching and unrelated scores lie, for texts and images alike.
  const size_t wanted = std::max<size_t>(64, static_cast<size_t>(top) * 16);
  const std::vector<ruclip::VectorHit> candidates =
      approximate ? approximate_candidates(rows_cache_base(db_path, db) + ".faiss", rows, matrix, query, wanted,
                                           args.integer("nprobe", 0), generation)
                  : matrix.top(query.data(), wanted, 0, filtered ? keep.data() : nullptr);
  float cut = static_cast<float>(args.number("cut", -2));
  if (cut < -1 && !candidates.empty()) {
    double mean = 0;
    for (int i = 0; i < dim; ++i) mean += sum[i] / rows.size() * query[i];
    cut = static_cast<float>((candidates[0].score + mean) / 2);
  }
  // Peaks first; a peak above the cut grows over the neighbouring samples of
  // its source above it; a peak already inside an earlier hit is part of it.
  std::vector<Hit> hits;
  std::vector<bool> used(rows.size(), false);  // by position
  auto joins = [&](size_t pos, int64_t source_id) {
    const size_t row = order[pos];
    return rows[row].source_id == source_id && !used[pos] && (!filtered || keep[row]) &&
           matrix.dot(row, query.data()) >= cut;
  };
  for (const ruclip::VectorHit& c : candidates) {
    if (static_cast<int>(hits.size()) >= top) break;
    const size_t p = position[c.row];
    if (used[p]) continue;
    Hit h{rows[c.row].source_id, p, p, p, c.score};
    if (c.score >= cut) {
      while (h.first > 0 && joins(h.first - 1, h.source_id)) --h.first;
      while (h.last + 1 < rows.size() && joins(h.last + 1, h.source_id)) ++h.last;
    }
    for (size_t q = h.first; q <= h.last; ++q) used[q] = true;
    hits.push_back(h);
  }

  json out_hits = json::array();
  for (const Hit& h : hits) {
    const ruclip::index::Source& src = sources.at(h.source_id);
    const SampleRow &first = rows[order[h.first]], &last = rows[order[h.last]], &peak = rows[order[h.peak]];
    json hit{{"score", h.score}, {"samples", h.last - h.first + 1}, {"sample", peak.id}};
    if (src.kind == ruclip::index::Source::Kind::kCamera) {
      hit["camera"] = src.name;
      hit["wall_time"] = ruclip::index::iso8601(peak.wall_time);
      hit["start_wall_time"] = ruclip::index::iso8601(first.wall_time);
      hit["end_wall_time"] = ruclip::index::iso8601(last.wall_time);
      hit["labels"] = db.labels(peak.id);
    } else {
      // A hit lasts until the next sample would have been taken (or the end).
      double end = last.time + src.every;
      if (src.duration > 0) end = std::min(end, src.duration);
      hit["file"] = src.name;
      hit["start"] = first.time;
      hit["end"] = end;
      hit["time"] = peak.time;
    }
    out_hits.push_back(std::move(hit));
  }
  if (!args.one("html").empty()) write_html(args.one("html"), query_text, out_hits, db);
  json out{{"db", db.location()}, {"model", model_dir}, {"samples", rows.size()},
           {"storage", ruclip::vector_storage_name(storage)}, {"synced", synced.read_from_store}, {"hits", out_hits}};
  if (image.empty())
    out["query"] = query_text;
  else
    out["image"] = image;
  std::cout << out.dump() << "\n";
  return 0;
}

// ---- prune ---------------------------------------------------------------------

int prune(const Args& args) {
  const std::string db_path = args.required("db");
  const std::string older = args.required("older-than");
  const int64_t before = ruclip::index::parse_time(older, ruclip::index::wall_clock_now(), "--older-than");
  std::unique_ptr<Store> db = Store::open(db_path, /*create=*/false);
  const std::string camera = args.one("camera");
  if (!camera.empty()) {
    const auto all = db->sources();
    if (std::none_of(all.begin(), all.end(), [&](const auto& s) {
          return s.kind == ruclip::index::Source::Kind::kCamera && s.name == camera;
        }))
      throw ruclip::Error("--camera '" + camera + "': no such camera in --db '" + db->location() + "'");
  }
  const int64_t removed = db->prune(before, camera);
  std::cout << json{{"db", db->location()}, {"removed", removed}, {"before", ruclip::index::iso8601(before)},
                    {"samples", db->sample_count()}}.dump()
            << "\n";
  return 0;
}

}  // namespace

const Command kIndex{"index",
                     "ruclip index --model DIR --db FILE|URI [--every SECONDS] VIDEO|FOLDER...",
                     {"model", "db", "every", "device", "threads", "precision"},
                     index};
const Command kSearch{"search",
                      "ruclip search --db FILE|URI (TEXT | --image FILE) [--camera NAME]... [--since TIME] "
                      "[--until TIME] [--top N] [--html OUT.html] [--template T]... [--cut COSINE] "
                      "[--storage float32|float16] [--approximate [--nprobe N]] [--model DIR]",
                      {"db", "image", "top", "html", "template", "cut", "storage", "nprobe", "model", "device",
                       "threads", "precision", "camera", "since", "until"},
                      search, {"approximate"}};
const Command kPrune{"prune", "ruclip prune --db FILE|URI --older-than AGE|TIME [--camera NAME]",
                     {"db", "older-than", "camera"}, prune};

}  // namespace ruclip_cli

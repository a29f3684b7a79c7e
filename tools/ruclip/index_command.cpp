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
// search: index_search.h (shared with `ruclip serve`), with --html writing a
// page of the hits. prune removes camera samples older than a time.
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

#include "cli.h"
#include "index_search.h"
#include "ruclip/error.h"
#include "ruclip/image.h"
#include "ruclip/index/store.h"
#include "ruclip/labels.h"
#include "ruclip/tools/image_files.h"
#include "ruclip/tools/vector_search.h"
#include "video_files.h"
#include "video_frame.h"

namespace ruclip_cli {
namespace {

namespace fs = std::filesystem;
using ruclip::index::Store;

constexpr int kThumbnailWidth = 192;
constexpr int kBatch = 8;

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

int search(const Args& args) {
  const std::string db_path = args.required("db");
  const std::string image = args.one("image");
  if (image.empty() && args.positional.size() != 1)
    throw UsageError(args.positional.empty() ? "search needs a TEXT or --image FILE"
                                             : "search takes one TEXT (quote it); got " +
                                                   std::to_string(args.positional.size()) + " arguments");
  if (!image.empty() && !args.positional.empty()) throw UsageError("give a TEXT or --image, not both");
  SearchFilters filters;
  filters.top = args.integer("top", 10);
  filters.cameras = args.all("camera");
  filters.since = args.one("since");
  filters.until = args.one("until");
  filters.cut = static_cast<float>(args.number("cut", -2));
  filters.approximate = args.flag("approximate");
  filters.nprobe = args.integer("nprobe", 0);
  filters.threshold = args.number("threshold", -1);
  if (!args.one("threshold").empty() && filters.threshold > 1)
    throw UsageError("option --threshold: a score between 0 and 1");
  const std::string scoring = args.one("scoring", "presence");
  if (scoring == "softmax")
    throw UsageError("--scoring softmax: a query is a single label, and a softmax over one label is always 1.0; use "
                     "--scoring presence (the default) or cosine");
  if (scoring != "presence" && scoring != "cosine")
    throw UsageError("option --scoring: expected presence or cosine, got '" + scoring + "'");
  filters.presence = scoring == "presence";
  filters.presence_margin = args.signed_number("presence-margin", 0);
  ruclip::VectorStorage storage;
  try {
    storage = ruclip::parse_vector_storage(args.one("storage", "float32"));
  } catch (const ruclip::Error& e) {
    throw UsageError(std::string("option --storage: ") + e.what());
  }

  const std::vector<std::string> background = background_file(args);
  IndexSearcher searcher(db_path, args.one("model"), model_options(args), storage, args.all("template"), background);
  print_warnings(searcher.model());
  std::vector<float> query;
  std::string query_text;
  if (image.empty()) {
    query_text = args.positional[0];
    query = searcher.text_query(query_text);
  } else {
    query_text = image;
    query = searcher.image_query(ruclip::load_image(image).view());
  }
  json out = searcher.search(query, filters);
  if (!args.one("html").empty()) write_html(args.one("html"), query_text, out["hits"], searcher.store());
  out["db"] = searcher.store().location();
  out["model"] = searcher.model_dir();
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
  if (!camera.empty()) require_cameras(db->sources(), {camera}, db->location());
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
                      "[--threshold P [--scoring presence|cosine] [--presence-margin LOGITS] [--background-file F]] "
                      "[--storage float32|float16] [--approximate [--nprobe N]] [--model DIR]",
                      {"db", "image", "top", "html", "template", "cut", "storage", "nprobe", "model", "device",
                       "threads", "precision", "camera", "since", "until", "threshold", "scoring", "presence-margin",
                       "background-file"},
                      search, {"approximate"}};
const Command kPrune{"prune", "ruclip prune --db FILE|URI --older-than AGE|TIME [--camera NAME]",
                     {"db", "older-than", "camera"}, prune};

}  // namespace ruclip_cli

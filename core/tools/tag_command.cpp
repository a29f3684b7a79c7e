// `ruclip tag`: video files to labelled time segments. Each file is decoded
// by GStreamer (uridecodebin: whatever codecs are installed) and runs through
// the ruclipfilter element (sync mode, one analysis per --every seconds,
// segments=true); its "ruclip" and "ruclip-segment" messages become the
// output: JSON (segments and per-sample scores), JSON lines, WebVTT, SRT or CSV.
#include <gst/gst.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include "cli.h"
#include "ruclip/labels.h"
#include "ruclip/segments.h"

namespace ruclip_cli {
namespace {

namespace fs = std::filesystem;

struct TaggedSegment {
  std::string label;
  double start = 0, end = 0, mean_score = 0, peak_score = 0;
  uint64_t frames = 0;
};

struct TaggedFile {
  std::string file;
  bool ok = false;
  bool settings_error = false;  // the element refused its settings (model, labels): no file can be tagged
  std::string error;
  double duration = -1;
  std::vector<TaggedSegment> segments;
  json samples = json::array();
};

struct TagSettings {
  std::string model;
  std::string labels;  // ';'-joined for the element
  std::string templates;
  double every = 1.0;
  double smoothing = 0, start = 0.5, end = 0.4, min_duration = 0;
  std::string label_thresholds;
  std::string device, precision;
  int threads = 0;
};

double seconds(guint64 ns) { return ns == GST_CLOCK_TIME_NONE ? -1 : ns / 1e9; }

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ";") + i;
  return out;
}

// The plugin is found on GST_PLUGIN_PATH / the system path, else in the
// build tree this binary came from, else where `meson install` puts it.
void find_plugin() {
  if (GstElementFactory* f = gst_element_factory_find("ruclipfilter")) {
    gst_object_unref(f);
    return;
  }
  for (const char* dir : {RUCLIP_GST_PLUGIN_BUILD_DIR, RUCLIP_GST_PLUGIN_INSTALL_DIR}) {
    gst_registry_scan_path(gst_registry_get(), dir);
    if (GstElementFactory* f = gst_element_factory_find("ruclipfilter")) {
      gst_object_unref(f);
      return;
    }
  }
  throw ruclip::Error("the ruclipfilter GStreamer plugin was not found (set GST_PLUGIN_PATH to the folder of "
                      "libgstruclip.so)");
}

std::string video_uri(const std::string& path) {
  GError* error = nullptr;
  gchar* uri = gst_filename_to_uri(path.c_str(), &error);
  if (!uri) {
    std::string msg = error ? error->message : "?";
    g_clear_error(&error);
    throw ruclip::Error(path + ": " + msg);
  }
  std::string out = uri;
  g_free(uri);
  return out;
}

struct Pipeline {
  GstElement* pipeline = nullptr;
  GstElement* convert = nullptr;
  GstElement* filter = nullptr;
  bool linked_video = false;
  std::string missing;  // caps a decoder was missing for (decodebin's "missing-plugin" message)
  ~Pipeline() {
    if (pipeline) {
      gst_element_set_state(pipeline, GST_STATE_NULL);
      gst_object_unref(pipeline);
    }
  }
};

// Only the video stream goes on (uridecodebin stops at raw video; audio stays encoded and unlinked).
void on_pad_added(GstElement*, GstPad* pad, gpointer data) {
  auto* p = static_cast<Pipeline*>(data);
  GstCaps* caps = gst_pad_get_current_caps(pad);
  if (!caps) caps = gst_pad_query_caps(pad, nullptr);
  const bool video = caps && gst_caps_get_size(caps) > 0 &&
                     g_str_has_prefix(gst_structure_get_name(gst_caps_get_structure(caps, 0)), "video/x-raw");
  if (caps) gst_caps_unref(caps);
  if (!video || p->linked_video) return;
  GstPad* sink = gst_element_get_static_pad(p->convert, "sink");
  if (gst_pad_link(pad, sink) == GST_PAD_LINK_OK) p->linked_video = true;
  gst_object_unref(sink);
}

// decodebin's "missing-plugin" element message: the media type it had no decoder for.
void note_missing_plugin(const GstStructure* st, Pipeline* p) {
  if (!gst_structure_has_name(st, "missing-plugin") || !p->missing.empty()) return;
  const GValue* detail = gst_structure_get_value(st, "detail");
  if (!detail || !GST_VALUE_HOLDS_CAPS(detail)) return;
  const GstCaps* caps = gst_value_get_caps(detail);
  if (gst_caps_get_size(caps) > 0) p->missing = gst_structure_get_name(gst_caps_get_structure(caps, 0));
}

void print_progress(const std::string& file, double position, double duration, uint64_t samples,
                    std::chrono::steady_clock::time_point started) {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  char line[512];
  if (duration > 0 && position >= 0) {
    const double rate = elapsed > 0 ? position / elapsed : 0;
    const double eta = rate > 0 ? (duration - position) / rate : 0;
    std::snprintf(line, sizeof line, "\r%s: %5.1f %%  %.0f samples/s  %.1fx real time  ETA %.0f s   ",
                  fs::path(file).filename().c_str(), 100 * position / duration, elapsed > 0 ? samples / elapsed : 0,
                  rate, eta);
  } else {
    std::snprintf(line, sizeof line, "\r%s: %llu samples   ", fs::path(file).filename().c_str(),
                  static_cast<unsigned long long>(samples));
  }
  std::cerr << line << std::flush;
}

TaggedFile tag_file(const std::string& file, const TagSettings& s) {
  TaggedFile out;
  out.file = file;
  try {
    if (!fs::is_regular_file(file)) throw ruclip::Error(file + ": no such file");
    Pipeline p;
    p.pipeline = gst_pipeline_new("tag");
    GstElement* decode = gst_element_factory_make("uridecodebin", nullptr);
    p.convert = gst_element_factory_make("videoconvert", nullptr);
    GstElement* filter = p.filter = gst_element_factory_make("ruclipfilter", nullptr);
    GstElement* sink = gst_element_factory_make("fakesink", nullptr);
    if (!decode || !p.convert || !filter || !sink)
      throw ruclip::Error("GStreamer elements missing (uridecodebin, videoconvert: gstreamer1.0-plugins-base)");
    gst_bin_add_many(GST_BIN(p.pipeline), decode, p.convert, filter, sink, NULL);
    GstCaps* video = gst_caps_from_string("video/x-raw");
    g_object_set(decode, "uri", video_uri(fs::absolute(file).string()).c_str(), "caps", video, NULL);
    gst_caps_unref(video);
    g_object_set(filter, "model", s.model.c_str(), "labels", s.labels.c_str(), "post-messages", TRUE,
                 "segments", TRUE, "interval-time", (guint64)std::llround(s.every * 1e9), "smoothing",
                 (guint64)std::llround(s.smoothing * 1e9), "segment-start", s.start, "segment-end", s.end,
                 "segment-min-duration", (guint64)std::llround(s.min_duration * 1e9), "device", s.device.c_str(),
                 "num-threads", s.threads, NULL);
    if (!s.templates.empty()) g_object_set(filter, "templates", s.templates.c_str(), NULL);
    if (!s.label_thresholds.empty()) g_object_set(filter, "label-thresholds", s.label_thresholds.c_str(), NULL);
    gst_util_set_object_arg(G_OBJECT(filter), "precision", s.precision.c_str());
    g_object_set(sink, "sync", FALSE, NULL);
    if (!gst_element_link_many(p.convert, filter, sink, NULL))
      throw ruclip::Error("cannot link videoconvert ! ruclipfilter ! fakesink");
    g_signal_connect(decode, "pad-added", G_CALLBACK(on_pad_added), &p);

    GstBus* bus = gst_element_get_bus(p.pipeline);
    if (gst_element_set_state(p.pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
      // The reason is on the bus (next loop), e.g. a model that can't load.
    }
    const bool progress = isatty(STDERR_FILENO);
    const auto started = std::chrono::steady_clock::now();
    auto last_progress = started;
    uint64_t samples = 0;
    for (bool done = false; !done;) {
      GstMessage* m = gst_bus_timed_pop(bus, 200 * GST_MSECOND);
      if (progress && std::chrono::steady_clock::now() - last_progress > std::chrono::milliseconds(500)) {
        last_progress = std::chrono::steady_clock::now();
        gint64 pos = -1, dur = -1;
        gst_element_query_position(p.pipeline, GST_FORMAT_TIME, &pos);
        gst_element_query_duration(p.pipeline, GST_FORMAT_TIME, &dur);
        print_progress(file, pos >= 0 ? pos / 1e9 : -1, dur > 0 ? dur / 1e9 : -1, samples, started);
      }
      if (!m) continue;
      switch (GST_MESSAGE_TYPE(m)) {
        case GST_MESSAGE_EOS:
          done = true;
          break;
        case GST_MESSAGE_ERROR: {
          GError* err = nullptr;
          gchar* debug = nullptr;
          gst_message_parse_error(m, &err, &debug);
          std::string text = err ? err->message : "?";
          // decodebin's errors name no file and say "missing a plug-in" for
          // audio it was not asked to decode: say what is wrong with this file.
          // Its "missing-plugin" message may come after the error (another thread).
          if (!p.linked_video) {
            while (GstMessage* more = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
              note_missing_plugin(gst_message_get_structure(more), &p);
              gst_message_unref(more);
            }
            if (!p.missing.empty())
              text = p.missing.rfind("video/", 0) == 0
                         ? "no decoder installed for its video (" + p.missing + ")"
                         : "no video stream (found " + p.missing.substr(0, p.missing.find('/')) + " only)";
            else if (err && g_error_matches(err, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN))
              text = "no video stream the installed GStreamer plugins can decode";
          }
          out.settings_error = GST_MESSAGE_SRC(m) == GST_OBJECT(p.filter) && err &&
                               err->domain == GST_RESOURCE_ERROR;
          out.error = text;
          g_clear_error(&err);
          g_free(debug);
          done = true;
          break;
        }
        case GST_MESSAGE_ELEMENT: {
          const GstStructure* st = gst_message_get_structure(m);
          if (gst_structure_has_name(st, "missing-plugin")) {
            note_missing_plugin(st, &p);
          } else if (gst_structure_has_name(st, "ruclip")) {
            ++samples;
            guint64 pts = GST_CLOCK_TIME_NONE;
            gst_structure_get_uint64(st, "timestamp", &pts);
            const GValue* labels = gst_structure_get_value(st, "labels");
            const GValue* scores = gst_structure_get_value(st, "scores");
            json sample{{"time", seconds(pts)}, {"scores", json::object()}};
            for (guint i = 0; labels && scores && i < gst_value_array_get_size(labels); ++i)
              sample["scores"][g_value_get_string(gst_value_array_get_value(labels, i))] =
                  g_value_get_double(gst_value_array_get_value(scores, i));
            out.samples.push_back(std::move(sample));
          } else if (gst_structure_has_name(st, "ruclip-segment") && gst_structure_get_string(st, "event") &&
                     std::string(gst_structure_get_string(st, "event")) == "end") {
            TaggedSegment seg;
            guint64 start = 0, end = 0, frames = 0;
            gst_structure_get(st, "start-pts", G_TYPE_UINT64, &start, "end-pts", G_TYPE_UINT64, &end, "frames",
                              G_TYPE_UINT64, &frames, "mean-score", G_TYPE_DOUBLE, &seg.mean_score, "peak-score",
                              G_TYPE_DOUBLE, &seg.peak_score, NULL);
            seg.label = gst_structure_get_string(st, "label");
            seg.start = seconds(start);
            seg.end = seconds(end);
            seg.frames = frames;
            out.segments.push_back(seg);
          }
          break;
        }
        default:
          break;
      }
      gst_message_unref(m);
    }
    if (progress) std::cerr << "\r\033[K" << std::flush;
    gint64 dur = -1;
    if (gst_element_query_duration(p.pipeline, GST_FORMAT_TIME, &dur) && dur > 0) out.duration = dur / 1e9;
    gst_object_unref(bus);
    if (out.error.empty() && !p.linked_video) out.error = "no video stream";
    out.ok = out.error.empty();
    if (!out.ok) out.error = file + ": " + out.error;
  } catch (const std::exception& e) {
    out.error = e.what();
  }
  std::sort(out.segments.begin(), out.segments.end(),
            [](const TaggedSegment& a, const TaggedSegment& b) { return a.start < b.start; });
  return out;
}

json segment_json(const TaggedSegment& s) {
  return {{"label", s.label}, {"start", s.start}, {"end", s.end}, {"mean_score", s.mean_score},
          {"peak_score", s.peak_score}, {"frames", s.frames}};
}

// HH:MM:SS.mmm (WebVTT) or HH:MM:SS,mmm (SRT).
std::string timestamp(double t, char decimal) {
  const long long ms = std::llround(std::max(0.0, t) * 1000);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld%c%03lld", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60,
                decimal, ms % 1000);
  return buf;
}

std::string cue_text(const TaggedSegment& s) {
  char score[32];
  std::snprintf(score, sizeof score, " (%.2f)", s.mean_score);
  return s.label + score;
}

std::string subtitles(const TaggedFile& f, bool vtt) {
  std::ostringstream out;
  if (vtt) out << "WEBVTT\n\n";
  int n = 0;
  for (const auto& s : f.segments) {
    if (!vtt) out << ++n << "\n";
    out << timestamp(s.start, vtt ? '.' : ',') << " --> " << timestamp(s.end, vtt ? '.' : ',') << "\n"
        << cue_text(s) << "\n\n";
  }
  return out.str();
}

std::string csv_field(const std::string& v) {
  if (v.find_first_of(",\"\n") == std::string::npos) return v;
  std::string q = "\"";
  for (char c : v) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

bool is_video_name(const fs::path& p) {
  static const std::set<std::string> kExtensions = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".ts",
                                                    ".mts", ".mpg", ".mpeg", ".ogv", ".ogg", ".flv", ".wmv", ".3gp"};
  std::string ext = p.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return kExtensions.count(ext) > 0;
}

// Files as given; a folder stands for the video files under it (by extension, sorted).
std::vector<std::string> expand(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const auto& in : inputs) {
    std::error_code ec;
    if (fs::is_directory(in, ec)) {
      std::vector<std::string> found;
      for (const auto& e : fs::recursive_directory_iterator(in, fs::directory_options::skip_permission_denied, ec))
        if (e.is_regular_file() && is_video_name(e.path())) found.push_back(e.path().string());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else {
      files.push_back(in);
    }
  }
  return files;
}

void write_text(const std::string& path, const std::string& text) {
  if (path.empty() || path == "-") {
    std::cout << text << std::flush;
    return;
  }
  std::ofstream f(path, std::ios::binary);
  f << text;
  f.close();
  if (!f) throw ruclip::Error("--output '" + path + "': cannot write");
}

int tag(const Args& args) {
  TagSettings s;
  s.model = args.required("model");
  std::vector<std::string> labels = args.all("label");
  if (!args.one("labels-file").empty()) {
    const auto more = ruclip::read_labels_file(args.one("labels-file"));
    labels.insert(labels.end(), more.begin(), more.end());
  }
  if (labels.empty()) throw UsageError("no labels: give --label L (repeatable) or --labels-file F");
  for (const auto& l : labels)
    if (l.find(';') != std::string::npos) throw UsageError("label '" + l + "': ';' separates labels");
  s.labels = join(labels);
  s.templates = join(args.all("template"));
  s.every = args.number("every", 1.0);
  if (s.every <= 0) throw UsageError("option --every: must be above 0 seconds");
  s.smoothing = args.number("smoothing", 0);
  s.start = args.number("start", 0.5);
  s.end = args.number("end", std::min(0.4, s.start));
  s.min_duration = args.number("min-duration", 0);
  s.label_thresholds = args.one("label-thresholds");
  try {
    ruclip::SegmentOptions check;
    check.thresholds = {s.start, s.end};
    check.per_label = ruclip::parse_label_thresholds(s.label_thresholds, check.thresholds);
    ruclip::SegmentTracker{check};
  } catch (const ruclip::Error& e) {
    throw UsageError(e.what());
  }
  s.device = args.one("device", "cpu");
  s.precision = args.one("precision", "fp32");
  s.threads = args.integer("threads", 0);
  const std::string format = args.one("format", "json");
  static const std::set<std::string> kFormats = {"json", "jsonl", "vtt", "srt", "csv"};
  if (!kFormats.count(format)) throw UsageError("option --format: expected json, jsonl, vtt, srt or csv, got '" + format + "'");
  const std::string output = args.one("output");
  const std::vector<std::string> files = expand(args.positional);
  if (files.empty()) throw UsageError("no video files (give files or folders of them)");
  const bool per_file_output = (format == "vtt" || format == "srt") && files.size() > 1;
  if (per_file_output && output.empty())
    throw UsageError("--format " + format + " with several videos: give --output DIR (one subtitle file per video)");

  gst_init(nullptr, nullptr);
  find_plugin();
  std::vector<TaggedFile> tagged;
  for (const auto& f : files) {
    tagged.push_back(tag_file(f, s));
    if (tagged.back().settings_error) throw ruclip::Error(tagged.back().error.substr(f.size() + 2));
    if (!tagged.back().ok) std::cerr << "ruclip tag: " << tagged.back().error << "\n";
  }

  if (format == "json") {
    json out{{"model", s.model}, {"labels", labels}, {"every", s.every}, {"files", json::array()}};
    for (const auto& t : tagged) {
      json f{{"file", t.file}, {"ok", t.ok}};
      if (!t.ok) f["error"] = t.error;
      if (t.duration >= 0) f["duration"] = t.duration;
      f["segments"] = json::array();
      for (const auto& seg : t.segments) f["segments"].push_back(segment_json(seg));
      f["samples"] = t.samples;
      out["files"].push_back(std::move(f));
    }
    write_text(output, out.dump(1) + "\n");
  } else if (format == "jsonl") {
    std::string text;
    for (const auto& t : tagged)
      for (const auto& seg : t.segments) {
        json line = segment_json(seg);
        line["file"] = t.file;
        text += line.dump() + "\n";
      }
    write_text(output, text);
  } else if (format == "csv") {
    std::ostringstream text;
    text << "file,label,start,end,mean_score,peak_score,frames\n";
    for (const auto& t : tagged)
      for (const auto& seg : t.segments)
        text << csv_field(t.file) << "," << csv_field(seg.label) << "," << seg.start << "," << seg.end << ","
             << seg.mean_score << "," << seg.peak_score << "," << seg.frames << "\n";
    write_text(output, text.str());
  } else if (per_file_output) {
    fs::create_directories(output);
    for (const auto& t : tagged)
      if (t.ok) write_text((fs::path(output) / fs::path(t.file).stem()).string() + "." + format, subtitles(t, format == "vtt"));
  } else {
    write_text(output, subtitles(tagged[0], format == "vtt"));
  }
  for (const auto& t : tagged)
    if (!t.ok) return 1;
  return 0;
}

}  // namespace

const Command kTag{"tag",
                   "ruclip tag --model DIR (--label L)... [--labels-file F] [--template T]... [--every SECONDS] "
                   "[--smoothing S] [--start P] [--end P] [--min-duration S] [--label-thresholds \"L:P[:P];...\"] "
                   "[--format json|jsonl|vtt|srt|csv] [--output FILE|DIR] VIDEO|FOLDER...",
                   {"model", "label", "labels-file", "template", "every", "smoothing", "start", "end", "min-duration",
                    "label-thresholds", "format", "output", "device", "threads", "precision"},
                   tag};

}  // namespace ruclip_cli

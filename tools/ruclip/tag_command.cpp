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
#include "ruclipmeta.h"
#include "video_files.h"
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
  std::string scoring = "auto";  // ruclipfilter's scoring
  double presence_margin = 0;
  int presence_baseline = 0;
  std::string background_file;
  std::string device, precision;
  int threads = 0;
};

double seconds(guint64 ns) { return ns == GST_CLOCK_TIME_NONE ? -1 : ns / 1e9; }

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ";") + i;
  return out;
}

// True for the ruclip of a build folder, false for an installed copy.
bool in_build_tree() {
  std::error_code ec;
  const fs::path exe = fs::canonical("/proc/self/exe", ec);
  if (ec) return false;
  const fs::path root = fs::weakly_canonical(RUCLIP_BUILD_ROOT, ec);
  return !ec && !root.empty() && exe.string().rfind(root.string() + "/", 0) == 0;
}

// The plugin is found on GST_PLUGIN_PATH / GStreamer's own folders, else
// where this ruclip's plugins are: the build folder's for the ruclip built
// there, the installed ones for an installed ruclip.
void find_plugin() {
  if (GstElementFactory* f = gst_element_factory_find("ruclipfilter")) {
    gst_object_unref(f);
    return;
  }
  const char* dir = in_build_tree() ? RUCLIP_GST_PLUGIN_BUILD_DIR : RUCLIP_GST_PLUGIN_INSTALL_DIR;
  gst_registry_scan_path(gst_registry_get(), dir);
  if (GstElementFactory* f = gst_element_factory_find("ruclipfilter")) {
    gst_object_unref(f);
    return;
  }
  throw ruclip::Error(std::string("the ruclipfilter GStreamer plugin was not found in ") + dir +
                      " (set GST_PLUGIN_PATH to the folder of libgstruclip.so)");
}

TaggedFile tag_file(const std::string& file, const TagSettings& s) {
  TaggedFile out;
  out.file = file;
  try {
    if (!fs::is_regular_file(file)) throw ruclip::Error(file + ": no such file");
    VideoPipeline p("tag");
    GstElement* convert = gst_element_factory_make("videoconvert", nullptr);
    GstElement* filter = gst_element_factory_make("ruclipfilter", nullptr);
    GstElement* sink = gst_element_factory_make("fakesink", nullptr);
    if (!convert || !filter || !sink)
      throw ruclip::Error("GStreamer elements missing (videoconvert: gstreamer1.0-plugins-base)");
    gst_bin_add_many(GST_BIN(p.pipeline), convert, filter, sink, NULL);
    p.decode(file, convert);
    g_object_set(filter, "model", s.model.c_str(), "labels", s.labels.c_str(), "post-messages", TRUE,
                 "segments", TRUE, "interval-time", (guint64)std::llround(s.every * 1e9), "smoothing",
                 (guint64)std::llround(s.smoothing * 1e9), "segment-start", s.start, "segment-end", s.end,
                 "segment-min-duration", (guint64)std::llround(s.min_duration * 1e9), "device", s.device.c_str(),
                 "num-threads", s.threads, NULL);
    if (!s.templates.empty()) g_object_set(filter, "templates", s.templates.c_str(), NULL);
    if (!s.label_thresholds.empty()) g_object_set(filter, "label-thresholds", s.label_thresholds.c_str(), NULL);
    gst_util_set_object_arg(G_OBJECT(filter), "scoring", s.scoring.c_str());
    g_object_set(filter, "presence-margin", s.presence_margin, "presence-baseline", (guint)s.presence_baseline, NULL);
    if (!s.background_file.empty()) g_object_set(filter, "background-file", s.background_file.c_str(), NULL);
    gst_util_set_object_arg(G_OBJECT(filter), "precision", s.precision.c_str());
    g_object_set(sink, "sync", FALSE, NULL);
    if (!gst_element_link_many(convert, filter, sink, NULL))
      throw ruclip::Error("cannot link videoconvert ! ruclipfilter ! fakesink");

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
        print_progress(file, pipeline_position(p.pipeline), pipeline_duration(p.pipeline), samples, started);
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
          const std::string text = p.error_text(bus, err);
          out.settings_error = GST_MESSAGE_SRC(m) == GST_OBJECT(filter) && err &&
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
            p.note_element_message(st);
          } else if (ruclip_structure_is_result(st)) {
            ++samples;
            // Running time, not PTS: the time from the file's start (an MPEG-TS file's PTS and
            // stream time start at its mux delay).
            json sample{{"time", seconds(ruclip_result_running_time(st))}, {"scores", json::object()}};
            for (guint i = 0; i < ruclip_result_n_labels(st); ++i)
              sample["scores"][ruclip_result_label(st, i)] = ruclip_result_score(st, i);
            out.samples.push_back(std::move(sample));
          } else if (RuClipSegment parsed; ruclip_segment_parse(st, &parsed) && !parsed.is_start) {
            TaggedSegment seg;
            seg.label = parsed.label;
            seg.start = seconds(parsed.start_running_time);
            seg.end = seconds(parsed.end_running_time);
            seg.frames = parsed.frames;
            seg.mean_score = parsed.mean_score;
            seg.peak_score = parsed.peak_score;
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
    out.duration = pipeline_duration(p.pipeline);
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
  s.scoring = args.one("scoring", "auto");
  const ruclip::Scoring scoring = resolve_scoring(s.scoring, labels.size());
  s.presence_margin = args.signed_number("presence-margin", 0);
  if (std::abs(s.presence_margin) > 100) throw UsageError("option --presence-margin: logits between -100 and 100");
  s.presence_baseline = args.integer("presence-baseline", 0);
  if (s.presence_baseline < 0) throw UsageError("option --presence-baseline: analyses of warm-up, 0 or more");
  s.background_file = args.one("background-file");
  background_file(args);  // a file without entries is an error before any video is opened
  s.device = args.one("device", "auto");
  s.precision = args.one("precision", "fp32");
  s.threads = args.integer("threads", 0);
  const std::string format = args.one("format", "json");
  static const std::set<std::string> kFormats = {"json", "jsonl", "vtt", "srt", "csv"};
  if (!kFormats.count(format)) throw UsageError("option --format: expected json, jsonl, vtt, srt or csv, got '" + format + "'");
  const std::string output = args.one("output");
  const std::vector<std::string> files = expand_video_inputs(args.positional);
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
    json out{{"model", s.model},
             {"labels", labels},
             {"scoring", ruclip::scoring_name(scoring)},
             {"every", s.every},
             {"files", json::array()}};
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
                   "[--scoring auto|softmax|presence] [--presence-margin LOGITS] [--presence-baseline N] "
                   "[--background-file F] [--format json|jsonl|vtt|srt|csv] [--output FILE|DIR] VIDEO|FOLDER...",
                   {"model", "label", "labels-file", "template", "every", "smoothing", "start", "end", "min-duration",
                    "label-thresholds", "scoring", "presence-margin", "presence-baseline", "background-file", "format",
                    "output", "device", "threads", "precision"},
                   tag};

}  // namespace ruclip_cli

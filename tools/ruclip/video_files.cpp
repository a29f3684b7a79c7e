#include "video_files.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <set>

#include "ruclip/error.h"

namespace ruclip_cli {
namespace {

namespace fs = std::filesystem;

bool is_video_name(const fs::path& p) {
  static const std::set<std::string> kExtensions = {".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".ts",
                                                    ".mts", ".mpg", ".mpeg", ".ogv", ".ogg", ".flv", ".wmv", ".3gp"};
  std::string ext = p.extension().string();
  for (char& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return kExtensions.count(ext) > 0;
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

void on_pad_added(GstElement*, GstPad* pad, gpointer data) {
  auto* p = static_cast<VideoPipeline*>(data);
  GstCaps* caps = gst_pad_get_current_caps(pad);
  if (!caps) caps = gst_pad_query_caps(pad, nullptr);
  const bool video = caps && gst_caps_get_size(caps) > 0 &&
                     g_str_has_prefix(gst_structure_get_name(gst_caps_get_structure(caps, 0)), "video/x-raw");
  if (caps) gst_caps_unref(caps);
  if (!video || p->linked_video) return;
  GstPad* sink = gst_element_get_static_pad(p->entry, "sink");
  if (gst_pad_link(pad, sink) == GST_PAD_LINK_OK) p->linked_video = true;
  gst_object_unref(sink);
}

}  // namespace

std::vector<std::string> expand_video_inputs(const std::vector<std::string>& inputs) {
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

VideoPipeline::VideoPipeline(const char* name) : pipeline(gst_pipeline_new(name)) {}

VideoPipeline::~VideoPipeline() {
  if (pipeline) {
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(pipeline);
  }
}

void VideoPipeline::decode(const std::string& file, GstElement* entry_element) {
  GstElement* decoder = gst_element_factory_make("uridecodebin", nullptr);
  if (!decoder) throw ruclip::Error("GStreamer's uridecodebin is missing (gstreamer1.0-plugins-base)");
  entry = entry_element;
  gst_bin_add(GST_BIN(pipeline), decoder);
  GstCaps* video = gst_caps_from_string("video/x-raw");
  g_object_set(decoder, "uri", video_uri(fs::absolute(file).string()).c_str(), "caps", video, NULL);
  gst_caps_unref(video);
  g_signal_connect(decoder, "pad-added", G_CALLBACK(on_pad_added), this);
}

void VideoPipeline::note_element_message(const GstStructure* st) {
  if (!gst_structure_has_name(st, "missing-plugin") || !missing.empty()) return;
  const GValue* detail = gst_structure_get_value(st, "detail");
  if (!detail || !GST_VALUE_HOLDS_CAPS(detail)) return;
  const GstCaps* caps = gst_value_get_caps(detail);
  if (gst_caps_get_size(caps) > 0) missing = gst_structure_get_name(gst_caps_get_structure(caps, 0));
}

std::string VideoPipeline::error_text(GstBus* bus, GError* err) {
  std::string text = err ? err->message : "?";
  if (linked_video) return text;
  while (GstMessage* more = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
    note_element_message(gst_message_get_structure(more));
    gst_message_unref(more);
  }
  if (!missing.empty())
    return missing.rfind("video/", 0) == 0 ? "no decoder installed for its video (" + missing + ")"
                                           : "no video stream (found " + missing.substr(0, missing.find('/')) + " only)";
  if (err && g_error_matches(err, GST_CORE_ERROR, GST_CORE_ERROR_MISSING_PLUGIN))
    return "no video stream the installed GStreamer plugins can decode";
  return text;
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

double pipeline_position(GstElement* pipeline) {
  gint64 pos = -1;
  return gst_element_query_position(pipeline, GST_FORMAT_TIME, &pos) && pos >= 0 ? pos / 1e9 : -1;
}

double pipeline_duration(GstElement* pipeline) {
  gint64 dur = -1;
  return gst_element_query_duration(pipeline, GST_FORMAT_TIME, &dur) && dur > 0 ? dur / 1e9 : -1;
}

}  // namespace ruclip_cli

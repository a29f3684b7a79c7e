// What `ruclip tag` and `ruclip index` share: which files are videos,
// decoding one with GStreamer (uridecodebin: whatever codecs are installed)
// into the elements a command puts after it, and saying in the user's words
// why a file could not be decoded.
#pragma once
#include <gst/gst.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace ruclip_cli {

// Files as given; a folder stands for the video files under it (by
// extension, recursively, sorted).
std::vector<std::string> expand_video_inputs(const std::vector<std::string>& inputs);

// A pipeline `uridecodebin uri=FILE ! <entry> ...`: only the first raw video
// stream is linked to `entry` (audio stays encoded and unlinked).
struct VideoPipeline {
  GstElement* pipeline = nullptr;
  GstElement* entry = nullptr;  // the command's first element after the decoder
  bool linked_video = false;
  std::string missing;  // caps a decoder was missing for (decodebin's "missing-plugin" message)

  explicit VideoPipeline(const char* name);
  ~VideoPipeline();
  VideoPipeline(const VideoPipeline&) = delete;
  VideoPipeline& operator=(const VideoPipeline&) = delete;

  // Adds the decoder for `file` (which must exist) linked to `entry`, which
  // the caller has added to `pipeline`. Throws ruclip::Error naming the file.
  void decode(const std::string& file, GstElement* entry_element);
  // An element message: notes decodebin's "missing-plugin" ones.
  void note_element_message(const GstStructure* st);
  // The user's words for an error message of this pipeline: decodebin's
  // errors name no file and say "missing a plug-in" for audio it was not
  // asked to decode. Reads pending element messages from `bus` (the
  // "missing-plugin" message may come after the error).
  std::string error_text(GstBus* bus, GError* err);
};

// "\rname: 42.0 %  3 samples/s  1.5x real time  ETA 12 s" on stderr.
void print_progress(const std::string& file, double position, double duration, uint64_t samples,
                    std::chrono::steady_clock::time_point started);

// Position and duration in seconds (-1 when unknown).
double pipeline_position(GstElement* pipeline);
double pipeline_duration(GstElement* pipeline);

}  // namespace ruclip_cli

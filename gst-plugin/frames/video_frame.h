// Video frames from GStreamer buffers for the core, shared by ruclipfilter and
// `ruclip index`: a buffer's frame mapped as a ruclip::FrameView (unmapped
// when the MappedFrame goes), and the rule that picks the frames analyzed.
// Threads: each object is used by one thread at a time.
#pragma once
#include <gst/video/video.h>

#include "ruclip/image.h"

namespace ruclip_gst {

// The frame as the core reads it (planes, strides, colour matrix and range);
// false for a format the core doesn't take.
bool to_frame_view (const GstVideoFrame * frame, ruclip::FrameView * view);

// A buffer's video frame mapped for reading, unmapped by the destructor or
// by unmap() (e.g. before the buffer's metas are written).
class MappedFrame {
public:
  // `flags`: GST_MAP_READ, with GST_MAP_CUDA for a buffer of CUDA memory
  // (its planes then are device pointers: mark the view FrameMemory::kCuda).
  MappedFrame (const GstVideoInfo * info, GstBuffer * buffer, GstMapFlags flags = GST_MAP_READ);
  ~MappedFrame () { unmap (); }
  MappedFrame (const MappedFrame &) = delete;
  MappedFrame & operator= (const MappedFrame &) = delete;

  bool mapped () const { return mapped_; }
  // false for a format the core doesn't take (or an unmapped frame).
  bool view (ruclip::FrameView * out) const { return mapped_ && to_frame_view (&frame_, out); }
  void unmap ();

private:
  GstVideoFrame frame_;
  bool mapped_ = false;
};

// ruclipfilter's interval and interval-time (also `ruclip index --every`):
// every `interval`-th frame, and at most one per `interval_time` ns of PTS.
class IntervalSampler {
public:
  // Counts the frame (its index since the start: *index) and says whether
  // it is analyzed.
  bool take (GstClockTime pts, guint interval, guint64 interval_time, guint64 * index = nullptr);
  // After a flush: the next frame with a PTS is taken whatever the last one was.
  void forget_last () { last_ = GST_CLOCK_TIME_NONE; }
  void reset () { seen_ = 0; last_ = GST_CLOCK_TIME_NONE; }

private:
  guint64 seen_ = 0;
  GstClockTime last_ = GST_CLOCK_TIME_NONE;
};

}  // namespace ruclip_gst

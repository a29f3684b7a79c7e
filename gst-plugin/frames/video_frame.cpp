// Frames for the core (video_frame.h).
#include "video_frame.h"

namespace ruclip_gst {

bool
to_frame_view (const GstVideoFrame * frame, ruclip::FrameView * view)
{
  using ruclip::PixelFormat;
  switch (GST_VIDEO_FRAME_FORMAT (frame)) {
    case GST_VIDEO_FORMAT_RGB: view->format = PixelFormat::RGB; break;
    case GST_VIDEO_FORMAT_BGR: view->format = PixelFormat::BGR; break;
    case GST_VIDEO_FORMAT_RGBA: view->format = PixelFormat::RGBA; break;
    case GST_VIDEO_FORMAT_BGRA: view->format = PixelFormat::BGRA; break;
    case GST_VIDEO_FORMAT_RGBx: view->format = PixelFormat::RGBx; break;
    case GST_VIDEO_FORMAT_BGRx: view->format = PixelFormat::BGRx; break;
    case GST_VIDEO_FORMAT_xRGB: view->format = PixelFormat::xRGB; break;
    case GST_VIDEO_FORMAT_xBGR: view->format = PixelFormat::xBGR; break;
    case GST_VIDEO_FORMAT_GRAY8: view->format = PixelFormat::GRAY8; break;
    case GST_VIDEO_FORMAT_I420: view->format = PixelFormat::I420; break;
    case GST_VIDEO_FORMAT_NV12: view->format = PixelFormat::NV12; break;
    default: return false;
  }
  view->width = GST_VIDEO_FRAME_WIDTH (frame);
  view->height = GST_VIDEO_FRAME_HEIGHT (frame);
  for (guint i = 0; i < GST_VIDEO_FRAME_N_PLANES (frame) && i < 3; ++i) {
    view->planes[i] = static_cast<const uint8_t *> (GST_VIDEO_FRAME_PLANE_DATA (frame, i));
    view->strides[i] = GST_VIDEO_FRAME_PLANE_STRIDE (frame, i);
  }
  const GstVideoColorimetry & c = frame->info.colorimetry;
  view->matrix = c.matrix == GST_VIDEO_COLOR_MATRIX_BT709 ? ruclip::YuvMatrix::BT709 : ruclip::YuvMatrix::BT601;
  view->full_range = c.range == GST_VIDEO_COLOR_RANGE_0_255;
  return true;
}

MappedFrame::MappedFrame (const GstVideoInfo * info, GstBuffer * buffer, GstMapFlags flags)
{
  mapped_ = gst_video_frame_map (&frame_, const_cast<GstVideoInfo *> (info), buffer, flags);
}

void
MappedFrame::unmap ()
{
  if (mapped_)
    gst_video_frame_unmap (&frame_);
  mapped_ = false;
}

bool
IntervalSampler::take (GstClockTime pts, guint interval, guint64 interval_time, guint64 * index)
{
  const guint64 i = seen_++;
  if (index)
    *index = i;
  if (interval > 1 && i % interval != 0)
    return false;
  if (interval_time > 0 && GST_CLOCK_TIME_IS_VALID (pts) && GST_CLOCK_TIME_IS_VALID (last_) && pts >= last_ &&
      pts - last_ < interval_time)
    return false;
  last_ = pts;
  return true;
}

}  // namespace ruclip_gst

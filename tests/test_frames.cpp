// gst-plugin/frames: the sampling rule ruclipfilter and `ruclip index` share,
// and a mapped frame as the core reads it.
#include <gst/gst.h>
#include <gtest/gtest.h>

#include <vector>

#include "video_frame.h"

using ruclip_gst::IntervalSampler;

namespace {

// Which of `pts` (ns) the rule takes.
std::vector<int> taken(IntervalSampler& s, const std::vector<GstClockTime>& pts, guint interval, guint64 interval_time) {
  std::vector<int> out;
  for (size_t i = 0; i < pts.size(); ++i)
    if (s.take(pts[i], interval, interval_time)) out.push_back(static_cast<int>(i));
  return out;
}

std::vector<GstClockTime> every_40ms(int n) {
  std::vector<GstClockTime> pts;
  for (int i = 0; i < n; ++i) pts.push_back(i * 40 * GST_MSECOND);
  return pts;
}

}  // namespace

TEST(IntervalSampler, EveryNthFrame) {
  IntervalSampler s;
  EXPECT_EQ(taken(s, every_40ms(10), 3, 0), (std::vector<int>{0, 3, 6, 9}));
  IntervalSampler all;
  EXPECT_EQ(taken(all, every_40ms(3), 1, 0), (std::vector<int>{0, 1, 2}));
}

TEST(IntervalSampler, AtMostOncePerIntervalTimeOfPts) {
  IntervalSampler s;
  // 25 fps, one per 200 ms: frames 0, 5, 10, ...
  EXPECT_EQ(taken(s, every_40ms(12), 1, 200 * GST_MSECOND), (std::vector<int>{0, 5, 10}));
}

TEST(IntervalSampler, BothRulesTogether) {
  IntervalSampler s;
  // every 2nd frame, and at most one per 100 ms: 0 (0 ms), 4 (160), 8 (320)
  EXPECT_EQ(taken(s, every_40ms(10), 2, 100 * GST_MSECOND), (std::vector<int>{0, 4, 8}));
}

TEST(IntervalSampler, PtsGoingBackOrMissingIsTaken) {
  IntervalSampler s;
  const GstClockTime none = GST_CLOCK_TIME_NONE;
  // A PTS before the last taken (a new segment) is taken; a frame without PTS is too.
  EXPECT_EQ(taken(s, {1000 * GST_MSECOND, 1010 * GST_MSECOND, 0, none, 10 * GST_MSECOND}, 1, 100 * GST_MSECOND),
            (std::vector<int>{0, 2, 3, 4}));
}

TEST(IntervalSampler, IndicesCountEveryFrameAndResetStartsOver) {
  IntervalSampler s;
  guint64 index = 99;
  for (int i = 0; i < 5; ++i) s.take(i * GST_SECOND, 2, 0, &index);
  EXPECT_EQ(index, 4u);
  s.forget_last();
  EXPECT_TRUE(s.take(4 * GST_SECOND, 1, 10 * GST_SECOND, &index));  // the last PTS forgotten
  EXPECT_EQ(index, 5u);
  s.reset();
  EXPECT_TRUE(s.take(0, 3, 0, &index));
  EXPECT_EQ(index, 0u);
}

TEST(MappedFrame, ViewsPlanesAndUnmaps) {
  gst_init(nullptr, nullptr);
  GstVideoInfo info;
  gst_video_info_set_format(&info, GST_VIDEO_FORMAT_I420, 64, 48);
  GstBuffer* buffer = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&info), nullptr);
  {
    ruclip_gst::MappedFrame frame(&info, buffer);
    ASSERT_TRUE(frame.mapped());
    ruclip::FrameView v;
    ASSERT_TRUE(frame.view(&v));
    EXPECT_EQ(v.format, ruclip::PixelFormat::I420);
    EXPECT_EQ(v.width, 64);
    EXPECT_EQ(v.height, 48);
    EXPECT_EQ(v.strides[0], GST_VIDEO_INFO_PLANE_STRIDE(&info, 0));
    EXPECT_NE(v.planes[2], nullptr);
    frame.unmap();
    EXPECT_FALSE(frame.view(&v));
  }
  // Unmapped: the buffer is writable again (a mapping still held would make it not).
  EXPECT_TRUE(gst_buffer_is_writable(buffer));
  GstVideoInfo yuy2;
  gst_video_info_set_format(&yuy2, GST_VIDEO_FORMAT_YUY2, 64, 48);
  GstBuffer* other = gst_buffer_new_allocate(nullptr, GST_VIDEO_INFO_SIZE(&yuy2), nullptr);
  {
    ruclip_gst::MappedFrame frame(&yuy2, other);
    ruclip::FrameView v;
    EXPECT_TRUE(frame.mapped());
    EXPECT_FALSE(frame.view(&v)) << "a format the core doesn't take";
  }
  gst_buffer_unref(other);
  gst_buffer_unref(buffer);
}

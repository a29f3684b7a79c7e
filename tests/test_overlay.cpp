// ruclipoverlay through GstHarness: frames of one colour carrying a RuClipMeta
// built here, and the pixels it changed (or didn't), in every format.
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>
#include <gtest/gtest.h>
#include <pango/pangocairo.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "element_util.h"
#include "ruclipmeta.h"

using element_test::make_buffer;

namespace {

const GstVideoFormat kFormats[] = {GST_VIDEO_FORMAT_RGB,  GST_VIDEO_FORMAT_BGR,  GST_VIDEO_FORMAT_RGBA,
                                   GST_VIDEO_FORMAT_BGRA, GST_VIDEO_FORMAT_RGBx, GST_VIDEO_FORMAT_BGRx,
                                   GST_VIDEO_FORMAT_xRGB, GST_VIDEO_FORMAT_xBGR, GST_VIDEO_FORMAT_GRAY8,
                                   GST_VIDEO_FORMAT_I420, GST_VIDEO_FORMAT_NV12};
constexpr int kWidth = 400, kHeight = 300;
const char* kDog = "человек с собакой";
const char* kParking = "пустая парковка";

struct Label {
  std::string text;
  double score;
};

struct Box {
  guint x, y, w, h;
  std::vector<Label> labels;
};

const std::vector<Label> kTwoLabels = {{kDog, 0.72}, {kParking, 0.21}};

void set_labels(GstStructure* s, const std::vector<Label>& labels) {
  GValue texts = G_VALUE_INIT, scores = G_VALUE_INIT, v = G_VALUE_INIT;
  gst_value_array_init(&texts, labels.size());
  gst_value_array_init(&scores, labels.size());
  for (const auto& l : labels) {
    g_value_init(&v, G_TYPE_STRING);
    g_value_set_string(&v, l.text.c_str());
    gst_value_array_append_value(&texts, &v);
    g_value_unset(&v);
    g_value_init(&v, G_TYPE_DOUBLE);
    g_value_set_double(&v, l.score);
    gst_value_array_append_value(&scores, &v);
    g_value_unset(&v);
  }
  gst_structure_take_value(s, "labels", &texts);
  gst_structure_take_value(s, "scores", &scores);
}

// A RuClipMeta like ruclipfilter's: labels best first, the analyzed frame and
// its PTS; with `regions`, the roi-list form (empty frame labels, a "regions" array).
void add_result(GstBuffer* buffer, const std::vector<Label>& labels, guint64 frame, GstClockTime source_pts,
                const std::vector<Box>* regions = nullptr) {
  GstCustomMeta* meta = gst_buffer_add_custom_meta(buffer, RUCLIP_META_NAME);
  ASSERT_NE(meta, nullptr) << "RuClipMeta is not registered";
  GstStructure* s = gst_custom_meta_get_structure(meta);
  set_labels(s, labels);
  gst_structure_set(s, "source-pts", G_TYPE_UINT64, (guint64)source_pts, "frame", G_TYPE_UINT64, frame, "fresh",
                    G_TYPE_BOOLEAN, TRUE, "model", G_TYPE_STRING, "test", NULL);
  if (!regions) return;
  GValue array = G_VALUE_INIT, v = G_VALUE_INIT;
  gst_value_array_init(&array, regions->size());
  gint id = 0;
  for (const auto& b : *regions) {
    GstStructure* r = gst_structure_new("ruclip-region", "id", G_TYPE_INT, id++, "roi-type", G_TYPE_STRING, "test",
                                        "x", G_TYPE_UINT, b.x, "y", G_TYPE_UINT, b.y, "w", G_TYPE_UINT, b.w, "h",
                                        G_TYPE_UINT, b.h, NULL);
    set_labels(r, b.labels);
    g_value_init(&v, GST_TYPE_STRUCTURE);
    g_value_take_boxed(&v, r);
    gst_value_array_append_value(&array, &v);
    g_value_unset(&v);
  }
  gst_structure_take_value(s, "regions", &array);
}

// A frame of one colour (a gray one for GRAY8).
GstBuffer* uniform_frame(GstVideoFormat format, std::string* caps, uint8_t r = 180, uint8_t g = 140, uint8_t b = 60) {
  element_test::Rgb rgb;
  rgb.width = kWidth;
  rgb.height = kHeight;
  rgb.pixels.resize(size_t(kWidth) * kHeight * 3);
  for (size_t i = 0; i < rgb.pixels.size(); i += 3) rgb.pixels[i] = r, rgb.pixels[i + 1] = g, rgb.pixels[i + 2] = b;
  if (format == GST_VIDEO_FORMAT_GRAY8) rgb = element_test::to_gray_rgb(rgb);
  GstBuffer* buffer = make_buffer(rgb, format, caps);
  GST_BUFFER_PTS(buffer) = 0;
  GST_BUFFER_DURATION(buffer) = GST_SECOND / 30;
  return buffer;
}

// The caps with the overlay composition feature, as a sink that composes would take them.
std::string with_overlay_feature(const std::string& caps) {
  const std::string raw = "video/x-raw";
  EXPECT_EQ(caps.compare(0, raw.size(), raw), 0);
  return raw + "(" GST_CAPS_FEATURE_MEMORY_SYSTEM_MEMORY ", " GST_CAPS_FEATURE_META_GST_VIDEO_OVERLAY_COMPOSITION ")" +
         caps.substr(raw.size());
}

// Which pixels differ between two frames: a pixel counts as changed when any
// byte of it does (chroma bytes of I420/NV12 cover 2x2 pixels, the x byte of
// xRGB its pixel). Bytes past a row's pixels (stride padding) must not change.
struct Diff {
  int width = 0, height = 0;
  std::vector<uint8_t> changed;
  int count = 0;
  int x0 = 1 << 30, y0 = 1 << 30, x1 = -1, y1 = -1;  // bounding box, inclusive
  bool padding_changed = false;
  long sum = 0;  // sum of |byte difference|
  bool at(int x, int y) const { return changed[size_t(y) * width + x] != 0; }
  int count_in(int x, int y, int w, int h) const {
    int n = 0;
    for (int j = std::max(y, 0); j < std::min(y + h, height); ++j)
      for (int i = std::max(x, 0); i < std::min(x + w, width); ++i) n += at(i, j);
    return n;
  }
  double bbox_fill() const { return count ? double(count) / ((x1 - x0 + 1) * double(y1 - y0 + 1)) : 0.0; }
};

Diff diff(const std::string& caps_str, GstBuffer* before, GstBuffer* after) {
  GstCaps* caps = gst_caps_from_string(caps_str.c_str());
  GstVideoInfo info;
  EXPECT_TRUE(gst_video_info_from_caps(&info, caps));
  gst_caps_unref(caps);
  Diff d;
  d.width = GST_VIDEO_INFO_WIDTH(&info);
  d.height = GST_VIDEO_INFO_HEIGHT(&info);
  d.changed.assign(size_t(d.width) * d.height, 0);
  GstVideoFrame a, b;
  EXPECT_TRUE(gst_video_frame_map(&a, &info, before, GST_MAP_READ));
  EXPECT_TRUE(gst_video_frame_map(&b, &info, after, GST_MAP_READ));
  const GstVideoFormatInfo* finfo = info.finfo;
  for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES(&a); ++p) {
    guint c = 0;
    while (GST_VIDEO_FORMAT_INFO_PLANE(finfo, c) != p) ++c;
    const int pstride = GST_VIDEO_FORMAT_INFO_PSTRIDE(finfo, c);
    const int wsub = finfo->w_sub[c], hsub = finfo->h_sub[c];
    const int row_bytes = GST_VIDEO_FRAME_COMP_WIDTH(&a, c) * pstride;
    const int rows = GST_VIDEO_FRAME_COMP_HEIGHT(&a, c);
    const int stride = GST_VIDEO_FRAME_PLANE_STRIDE(&a, p);
    const auto* pa = static_cast<const uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&a, p));
    const auto* pb = static_cast<const uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&b, p));
    for (int r = 0; r < rows; ++r)
      for (int i = 0; i < stride; ++i) {
        const uint8_t va = pa[size_t(r) * stride + i], vb = pb[size_t(r) * stride + i];
        if (va == vb) continue;
        if (i >= row_bytes) {
          d.padding_changed = true;
          continue;
        }
        d.sum += std::abs(int(va) - int(vb));
        const int px = i / pstride;
        for (int y = r << hsub; y < std::min((r + 1) << hsub, d.height); ++y)
          for (int x = px << wsub; x < std::min((px + 1) << wsub, d.width); ++x) d.changed[size_t(y) * d.width + x] = 1;
      }
  }
  gst_video_frame_unmap(&a);
  gst_video_frame_unmap(&b);
  for (int y = 0; y < d.height; ++y)
    for (int x = 0; x < d.width; ++x)
      if (d.at(x, y)) {
        d.count++;
        d.x0 = std::min(d.x0, x), d.y0 = std::min(d.y0, y);
        d.x1 = std::max(d.x1, x), d.y1 = std::max(d.y1, y);
      }
  return d;
}

// What came out of the element for one buffer, and how it differs from what went in.
struct Pushed {
  GstBuffer* out = nullptr;
  Diff diff;
  Pushed() = default;
  Pushed(const Pushed&) = delete;
  Pushed& operator=(const Pushed&) = delete;
  ~Pushed() {
    if (out) gst_buffer_unref(out);
  }
};

// ruclipoverlay with `props` in a harness, fed uniform frames of `format`.
class OverlayRun {
 public:
  explicit OverlayRun(GstVideoFormat format, const std::string& props = "") : format_(format) {
    gst_buffer_unref(uniform_frame(format, &caps_));
    GError* error = nullptr;
    const std::string desc = "ruclipoverlay " + props;
    GstElement* e = gst_parse_launch(desc.c_str(), &error);
    if (!e) {
      ADD_FAILURE() << desc << ": " << (error ? error->message : "?");
      g_clear_error(&error);
      e = gst_element_factory_make("identity", nullptr);
    }
    h_ = gst_harness_new_with_element(e, "sink", "src");
    gst_object_unref(e);
    gst_harness_set_src_caps_str(h_, caps_.c_str());
  }
  OverlayRun(const OverlayRun&) = delete;
  OverlayRun& operator=(const OverlayRun&) = delete;
  ~OverlayRun() { gst_harness_teardown(h_); }

  GstHarness* harness() const { return h_; }
  GstElement* element() const { return h_->element; }
  const std::string& caps() const { return caps_; }

  // Downstream takes the overlay composition caps (and, with `offer_meta`,
  // offers the meta in its allocation answer).
  void downstream_composes(bool offer_meta) {
    gst_harness_set_sink_caps_str(h_, with_overlay_feature(caps_).c_str());
    if (offer_meta) gst_harness_add_propose_allocation_meta(h_, GST_VIDEO_OVERLAY_COMPOSITION_META_API_TYPE, NULL);
  }

  // Pushes a frame carrying a result (none with `with_result` false) at `pts`.
  void push(Pushed* p, const std::vector<Label>& labels = kTwoLabels, guint64 frame = 1, GstClockTime source_pts = 0,
            GstClockTime pts = 0, const std::vector<Box>* regions = nullptr, bool with_result = true) {
    GstBuffer* buffer = uniform_frame(format_, &caps_);
    GST_BUFFER_PTS(buffer) = pts;
    if (with_result) add_result(buffer, labels, frame, source_pts, regions);
    GstBuffer* before = gst_buffer_copy_deep(buffer);
    p->out = gst_harness_push_and_pull(h_, buffer);
    EXPECT_NE(p->out, nullptr);
    if (p->out) p->diff = diff(caps_, before, p->out);
    gst_buffer_unref(before);
  }

 private:
  GstVideoFormat format_;
  std::string caps_;
  GstHarness* h_ = nullptr;
};

bool src_caps_have_overlay_feature(GstHarness* h) {
  GstCaps* caps = gst_pad_get_current_caps(h->sinkpad);
  bool has = false;
  for (guint i = 0; caps && i < gst_caps_get_size(caps); ++i)
    has = has || gst_caps_features_contains(gst_caps_get_features(caps, i),
                                            GST_CAPS_FEATURE_META_GST_VIDEO_OVERLAY_COMPOSITION);
  if (caps) gst_caps_unref(caps);
  return has;
}

}  // namespace

class Overlay : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    gst_init(nullptr, nullptr);
    // Loads the plugin, which registers RuClipMeta.
    GstElement* e = gst_element_factory_make("ruclipoverlay", nullptr);
    ASSERT_NE(e, nullptr) << "ruclipoverlay not found (GST_PLUGIN_PATH?)";
    gst_object_unref(e);
  }
};

TEST_F(Overlay, Defaults) {
  GstElement* e = gst_element_factory_make("ruclipoverlay", nullptr);
  gchar *font = nullptr, *title = nullptr;
  guint max_labels = 0, background = 0, text = 0;
  gboolean fade = FALSE, show_scores = FALSE;
  guint64 fade_time = 0;
  gint position = -1;
  g_object_get(e, "font-desc", &font, "title", &title, "max-labels", &max_labels, "background-color", &background,
               "text-color", &text, "fade", &fade, "show-scores", &show_scores, "fade-time", &fade_time, "position",
               &position, NULL);
  EXPECT_STREQ(font, "Sans 12");
  EXPECT_TRUE(title == nullptr || *title == '\0');
  EXPECT_EQ(max_labels, 3u);
  EXPECT_GT(background >> 24, 0u);  // semi-transparent
  EXPECT_LT(background >> 24, 255u);
  EXPECT_EQ(text >> 24, 255u);
  EXPECT_TRUE(fade);
  EXPECT_TRUE(show_scores);
  EXPECT_EQ(fade_time, 2 * GST_SECOND);
  EXPECT_EQ(position, 0);  // top-left
  g_free(font);
  g_free(title);
  gst_object_unref(e);
}

// Every format: the panel is drawn in the chosen corner, it is a filled
// rectangle (its background), and no pixel outside it changes.
TEST_F(Overlay, DrawsThePanelInTheCornerInEveryFormat) {
  for (GstVideoFormat format : kFormats) {
    for (const char* position : {"top-left", "bottom-right"}) {
      SCOPED_TRACE(std::string(gst_video_format_to_string(format)) + " " + position);
      OverlayRun run(format, std::string("position=") + position);
      Pushed p;
      run.push(&p);
      const Diff& d = p.diff;
      EXPECT_GT(d.count, 4000);
      EXPECT_GT(d.bbox_fill(), 0.95) << "the changed pixels are not one panel";
      EXPECT_FALSE(d.padding_changed);
      if (std::string(position) == "top-left") {
        EXPECT_LE(d.x0, 12);
        EXPECT_LE(d.y0, 12);
        EXPECT_LT(d.x1, kWidth * 3 / 4);
        EXPECT_LT(d.y1, kHeight / 2);
      } else {
        EXPECT_GE(d.x1, kWidth - 13);
        EXPECT_GE(d.y1, kHeight - 13);
        EXPECT_GT(d.x0, kWidth / 4);
        EXPECT_GT(d.y0, kHeight / 2);
      }
      // Downstream (the harness) takes anything: plain caps, blended.
      EXPECT_FALSE(src_caps_have_overlay_feature(run.harness()));
      EXPECT_EQ(gst_buffer_get_video_overlay_composition_meta(p.out), nullptr);
    }
  }
}

TEST_F(Overlay, BufferWithoutMetaIsUntouched) {
  for (GstVideoFormat format : kFormats) {
    SCOPED_TRACE(gst_video_format_to_string(format));
    OverlayRun run(format);
    // A result first (drawn), then a buffer without one: passes as it came.
    Pushed first, second;
    run.push(&first);
    EXPECT_GT(first.diff.count, 0);
    run.push(&second, {}, 0, 0, GST_SECOND / 30, nullptr, false);
    EXPECT_EQ(second.diff.count, 0);
    EXPECT_FALSE(second.diff.padding_changed);
    EXPECT_EQ(gst_buffer_get_video_overlay_composition_meta(second.out), nullptr);
  }
}

// Downstream takes the meta:GstVideoOverlayComposition caps and offers the
// meta in the allocation query: the drawing rides on the buffer, no pixel changes.
TEST_F(Overlay, AttachesTheCompositionWhenDownstreamTakesIt) {
  for (GstVideoFormat format : kFormats) {
    SCOPED_TRACE(gst_video_format_to_string(format));
    OverlayRun run(format);
    run.downstream_composes(true);
    Pushed p;
    run.push(&p);
    EXPECT_EQ(p.diff.count, 0);
    EXPECT_FALSE(p.diff.padding_changed);
    EXPECT_TRUE(src_caps_have_overlay_feature(run.harness()));
    GstVideoOverlayCompositionMeta* meta = gst_buffer_get_video_overlay_composition_meta(p.out);
    ASSERT_NE(meta, nullptr);
    ASSERT_EQ(gst_video_overlay_composition_n_rectangles(meta->overlay), 1u);
    GstVideoOverlayRectangle* rect = gst_video_overlay_composition_get_rectangle(meta->overlay, 0);
    gint x, y;
    guint w, h;
    ASSERT_TRUE(gst_video_overlay_rectangle_get_render_rectangle(rect, &x, &y, &w, &h));
    EXPECT_LE(x, 12);
    EXPECT_LE(y, 12);
    EXPECT_GT(w, 100u);
    EXPECT_GT(h, 30u);
    EXPECT_LE(x + (gint)w, kWidth);
    // The rectangle is the panel: visible everywhere (its background).
    GstBuffer* pixels = gst_video_overlay_rectangle_get_pixels_unscaled_argb(
        rect, GST_VIDEO_OVERLAY_FORMAT_FLAG_PREMULTIPLIED_ALPHA);
    GstMapInfo map;
    ASSERT_TRUE(gst_buffer_map(pixels, &map, GST_MAP_READ));
    size_t visible = 0;
    for (size_t i = 0; i < map.size; i += 4) visible += map.data[i + 3] > 0;  // BGRA in memory (little endian)
    gst_buffer_unmap(pixels, &map);
    EXPECT_EQ(visible, size_t(w) * h);
  }
}

// Caps with the feature but no meta in the allocation answer: textoverlay's
// rule, blend (the caps stay: downstream takes nothing else).
TEST_F(Overlay, BlendsWhenTheAllocationDoesNotOfferTheMeta) {
  OverlayRun run(GST_VIDEO_FORMAT_RGBA);
  run.downstream_composes(false);
  Pushed p;
  run.push(&p);
  EXPECT_GT(p.diff.count, 4000);
  EXPECT_EQ(gst_buffer_get_video_overlay_composition_meta(p.out), nullptr);
}

// roi-list results: each box outlined (the outline inside the box), its
// labels in a tag above it, the inside of the box and the rest untouched.
TEST_F(Overlay, DrawsEachRegionsBox) {
  // Box 0 is wider than its tag (~160 pixels at Sans 12).
  const std::vector<Box> boxes = {{30, 80, 176, 100, {{"красный фон", 0.9}, {"синий фон", 0.1}}},
                                  {250, 120, 120, 120, {{"синий фон", 0.8}}}};
  for (GstVideoFormat format : {GST_VIDEO_FORMAT_RGBA, GST_VIDEO_FORMAT_BGR, GST_VIDEO_FORMAT_GRAY8,
                                GST_VIDEO_FORMAT_I420, GST_VIDEO_FORMAT_NV12}) {
    SCOPED_TRACE(gst_video_format_to_string(format));
    OverlayRun run(format);
    Pushed p;
    run.push(&p, {}, 1, 0, 0, &boxes);
    const Diff& d = p.diff;
    for (const auto& b : boxes) {
      const int x = b.x, y = b.y, w = b.w, h = b.h;
      SCOPED_TRACE("box at " + std::to_string(x) + "," + std::to_string(y));
      // The outline: every edge, all along.
      for (int t = 4; t < w - 4; t += 7) {
        EXPECT_TRUE(d.at(x + t, y)) << "top, " << t;
        EXPECT_TRUE(d.at(x + t, y + h - 1)) << "bottom, " << t;
      }
      for (int t = 4; t < h - 4; t += 7) {
        EXPECT_TRUE(d.at(x, y + t)) << "left, " << t;
        EXPECT_TRUE(d.at(x + w - 1, y + t)) << "right, " << t;
      }
      // Inside the box (past the outline and a chroma block): untouched.
      EXPECT_EQ(d.count_in(x + 6, y + 6, w - 12, h - 12), 0);
      // The tag above the box: drawn.
      EXPECT_GT(d.count_in(x, y - 16, w, 16), 16 * 60);
    }
    // Away from the boxes and tags: untouched (no panel: no frame labels, no title).
    EXPECT_EQ(d.count_in(0, 0, kWidth, 30), 0);
    EXPECT_EQ(d.count_in(0, 0, 26, kHeight), 0);
    EXPECT_EQ(d.count_in(0, 250, kWidth, kHeight - 250), 0);
    EXPECT_EQ(d.count_in(210, 0, 36, kHeight), 0);
    EXPECT_FALSE(d.padding_changed);
  }
}

// The Cyrillic is drawn as glyphs: the font has them all (no unknown glyph
// boxes), the text line has many text pixels, and other words other pixels.
TEST_F(Overlay, CyrillicIsDrawnAsGlyphs) {
  PangoFontMap* font_map = pango_cairo_font_map_new();
  PangoContext* context = pango_font_map_create_context(font_map);
  PangoFontDescription* font = pango_font_description_from_string("Sans 12");
  for (const char* text : {kDog, kParking}) {
    PangoLayout* layout = pango_layout_new(context);
    pango_layout_set_font_description(layout, font);
    pango_layout_set_text(layout, text, -1);
    EXPECT_EQ(pango_layout_get_unknown_glyphs_count(layout), 0) << text << ": the font lacks Cyrillic glyphs";
    g_object_unref(layout);
  }
  pango_font_description_free(font);
  g_object_unref(context);
  g_object_unref(font_map);

  std::vector<std::vector<uint8_t>> masks;
  for (const char* text : {kDog, kParking}) {
    // No background, no scores: what changes is the text alone.
    OverlayRun run(GST_VIDEO_FORMAT_RGBA, "show-scores=false max-labels=1 background-color=0 text-color=0xffffffff");
    Pushed p;
    run.push(&p, {{text, 0.9}});
    const Diff& d = p.diff;
    masks.push_back(d.changed);
    // One line of 12-point text in the top-left corner: its bounding box.
    EXPECT_LE(d.x0, 16) << text;
    EXPECT_LE(d.y0, 24) << text;
    EXPECT_LT(d.y1 - d.y0, 24) << text;
    EXPECT_GT(d.x1 - d.x0, 80) << text;
    // Glyph strokes, not a filled box nor a few dots.
    EXPECT_GT(d.count, 200) << text;
    EXPECT_LT(d.bbox_fill(), 0.7) << text;
  }
  int differ = 0;
  for (size_t i = 0; i < masks[0].size(); ++i) differ += masks[0][i] != masks[1][i];
  EXPECT_GT(differ, 200) << "two different strings gave (nearly) the same pixels";
}

// fade: drawn fully up to fade-time, fainter after, gone after twice that;
// fade=false keeps it.
TEST_F(Overlay, OldResultsFadeOut) {
  const GstClockTime analyzed = 10 * GST_SECOND;
  OverlayRun run(GST_VIDEO_FORMAT_RGBA);
  Pushed fresh, later, fading, gone, kept;
  run.push(&fresh, kTwoLabels, 7, analyzed, analyzed);
  run.push(&later, kTwoLabels, 7, analyzed, analyzed + GST_SECOND * 3 / 2);  // within fade-time: as fresh
  run.push(&fading, kTwoLabels, 7, analyzed, analyzed + GST_SECOND * 3);     // half faded
  run.push(&gone, kTwoLabels, 7, analyzed, analyzed + GST_SECOND * 4);
  EXPECT_GT(fresh.diff.count, 4000);
  EXPECT_EQ(later.diff.count, fresh.diff.count);
  EXPECT_EQ(later.diff.sum, fresh.diff.sum);
  EXPECT_GT(fading.diff.count, 0);
  EXPECT_LT(fading.diff.sum, fresh.diff.sum * 0.7);
  EXPECT_GT(fading.diff.sum, fresh.diff.sum * 0.3);
  EXPECT_EQ(gone.diff.count, 0);
  g_object_set(run.element(), "fade", FALSE, NULL);
  run.push(&kept, kTwoLabels, 7, analyzed, analyzed + GST_SECOND * 60);
  EXPECT_EQ(kept.diff.sum, fresh.diff.sum);
}

// Drawn again only for a new result (frame, source-pts) or new properties.
TEST_F(Overlay, RedrawsOnlyForANewResultOrProperties) {
  OverlayRun run(GST_VIDEO_FORMAT_RGBA);
  auto bytes = [](GstBuffer* b) {
    std::vector<uint8_t> v(gst_buffer_get_size(b));
    gst_buffer_extract(b, 0, v.data(), v.size());
    return v;
  };
  Pushed first, again, titled, next;
  run.push(&first, kTwoLabels, 1);
  // Same frame and source-pts: the drawing is reused as it is.
  run.push(&again, {{kParking, 0.5}}, 1);
  EXPECT_EQ(bytes(first.out), bytes(again.out));
  // A property changes: drawn again.
  g_object_set(run.element(), "title", "ruclip-shapes-ru", NULL);
  run.push(&titled, kTwoLabels, 1);
  EXPECT_NE(bytes(first.out), bytes(titled.out));
  EXPECT_GT(titled.diff.count, first.diff.count);
  // A new result: drawn again.
  run.push(&next, {{kParking, 0.5}}, 2);
  EXPECT_NE(bytes(titled.out), bytes(next.out));
}

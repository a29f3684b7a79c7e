/**
 * SECTION:element-ruclipoverlay
 * @title: ruclipoverlay
 *
 * Draws the labels ruclipfilter attached to the stream (its RuClipMeta, see
 * ruclipmeta.h) onto the video, with Pango and Cairo, so any Cyrillic text
 * renders: a panel in a corner (position) with an optional title line and
 * the best labels first, at most max-labels, each with its score as a bar
 * and as a number (show-scores). With inference-region=roi-list upstream
 * the meta lists regions instead: each region's box is outlined and its best
 * labels are written beside it.
 *
 * |[
 * gst-launch-1.0 v4l2src ! videoconvert ! \
 *   ruclipfilter model=/models/ruclip-vit-base-patch32-384 labels="человек;автомобиль;пустая улица" mode=async ! \
 *   ruclipoverlay title="ruCLIP" ! videoconvert ! autovideosink
 * ]|
 *
 * Like textoverlay, the drawing is an ARGB GstVideoOverlayComposition. When
 * downstream accepts the meta:GstVideoOverlayComposition caps feature and
 * offers GstVideoOverlayCompositionMeta in the allocation query (a sink that
 * composes on the GPU), the composition is attached to the buffer and no pixel
 * is touched; otherwise it is blended into the frame in place. It is drawn
 * again only when the result (its frame and source-pts) or a property
 * changes; between results the same drawing is reused. A buffer without
 * RuClipMeta passes untouched. With fade=true, a result older than fade-time
 * (buffer PTS minus the result's source-pts) fades out over one more
 * fade-time and is then no longer drawn.
 */
#include "gstruclipoverlay.h"

#include <cairo.h>
#include <gst/video/video.h>
#include <gst/video/video-overlay-composition.h>
#include <pango/pangocairo.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ruclipmeta.h"

GST_DEBUG_CATEGORY_STATIC (gst_ruclip_overlay_debug);
#define GST_CAT_DEFAULT gst_ruclip_overlay_debug

// ruclipfilter's formats; gst_video_overlay_composition_blend handles each
// (it unpacks a line to 8-bit ARGB/AYUV, blends, packs it back).
#define VIDEO_FORMATS "{ RGB, BGR, RGBA, BGRA, RGBx, BGRx, xRGB, xBGR, GRAY8, I420, NV12 }"
#define OVERLAY_META_FEATURE GST_CAPS_FEATURE_META_GST_VIDEO_OVERLAY_COMPOSITION

typedef enum {
  RUCLIP_POSITION_TOP_LEFT,
  RUCLIP_POSITION_TOP_RIGHT,
  RUCLIP_POSITION_BOTTOM_LEFT,
  RUCLIP_POSITION_BOTTOM_RIGHT,
} RuClipPosition;

static const GEnumValue ruclip_positions[] = {
  {RUCLIP_POSITION_TOP_LEFT, "Top left corner", "top-left"},
  {RUCLIP_POSITION_TOP_RIGHT, "Top right corner", "top-right"},
  {RUCLIP_POSITION_BOTTOM_LEFT, "Bottom left corner", "bottom-left"},
  {RUCLIP_POSITION_BOTTOM_RIGHT, "Bottom right corner", "bottom-right"},
  {0, NULL, NULL},
};

// Registered once, on first use (a C++ static is initialized thread-safely).
#define GST_TYPE_RUCLIP_POSITION (ruclip_position_get_type ())
static GType
ruclip_position_get_type (void)
{
  static const GType type = g_enum_register_static ("GstRuClipOverlayPosition", ruclip_positions);
  return type;
}

enum {
  PROP_0,
  PROP_POSITION,
  PROP_FONT_DESC,
  PROP_TEXT_COLOR,
  PROP_BAR_COLOR,
  PROP_BACKGROUND_COLOR,
  PROP_MAX_LABELS,
  PROP_TITLE,
  PROP_SHOW_SCORES,
  PROP_FADE,
  PROP_FADE_TIME,
};

#define DEFAULT_POSITION RUCLIP_POSITION_TOP_LEFT
#define DEFAULT_FONT_DESC "Sans 12"
#define DEFAULT_TEXT_COLOR 0xffffffff        /* opaque white */
#define DEFAULT_BAR_COLOR 0xff4caf50         /* opaque green */
#define DEFAULT_BACKGROUND_COLOR 0xa0000000  /* black, 63% opaque */
#define DEFAULT_MAX_LABELS 3
#define DEFAULT_SHOW_SCORES TRUE
#define DEFAULT_FADE TRUE
#define DEFAULT_FADE_TIME (2 * GST_SECOND)
#define MAX_FADE_TIME (G_MAXUINT64 / 4)

// Fading goes in this many steps (a faded copy of the drawing per step).
#define FADE_LEVELS 64

namespace {

struct Settings {
  RuClipPosition position = DEFAULT_POSITION;
  std::string font_desc = DEFAULT_FONT_DESC;
  guint text_color = DEFAULT_TEXT_COLOR;
  guint bar_color = DEFAULT_BAR_COLOR;
  guint background_color = DEFAULT_BACKGROUND_COLOR;
  guint max_labels = DEFAULT_MAX_LABELS;
  std::string title;
  bool show_scores = DEFAULT_SHOW_SCORES;
  bool fade = DEFAULT_FADE;
  guint64 fade_time = DEFAULT_FADE_TIME;
};

struct Label {
  std::string text;
  double score = 0.0;
};

struct Region {
  gint x = 0, y = 0, w = 0, h = 0;
  std::vector<Label> labels;  // best first, at most max-labels
};

// What of a RuClipMeta is drawn.
struct Shown {
  std::vector<Label> labels;  // best first, at most max-labels
  bool has_regions = false;   // roi-list: the boxes are the result
  std::vector<Region> regions;
  guint64 frame = G_MAXUINT64;
  GstClockTime source_pts = GST_CLOCK_TIME_NONE;
};

// One rendered ARGB piece of the drawing (premultiplied, Cairo's ARGB32 =
// GST_VIDEO_OVERLAY_COMPOSITION_FORMAT_RGB) and where it goes in the frame.
struct Piece {
  GstBuffer *pixels = nullptr;
  gint x = 0, y = 0;
  gint w = 0, h = 0;
};

struct OverlayState {
  std::mutex lock;             // settings, settings_version
  Settings settings;
  guint64 settings_version = 1;  // bumped by every property change

  // Streaming thread only.
  PangoFontMap *font_map = nullptr;
  PangoContext *context = nullptr;
  bool decide_attach = true;   // look at downstream again (after new caps)
  bool attach = false;         // attach the composition instead of blending
  // The drawing of the latest result, fully opaque, and what it was made of.
  bool rendered = false;
  guint64 key_frame = 0;
  GstClockTime key_pts = GST_CLOCK_TIME_NONE;
  guint64 key_version = 0;
  gint key_width = 0, key_height = 0;
  std::vector<Piece> pieces;
  // The composition of `pieces` at fade level `composition_level` (the last one used).
  GstVideoOverlayComposition *composition = nullptr;
  int composition_level = -1;
  bool warned_blend = false;
  bool warned_glyphs = false;

  void clear_drawing ()
  {
    for (auto & p : pieces)
      gst_buffer_unref (p.pixels);
    pieces.clear ();
    if (composition)
      gst_video_overlay_composition_unref (composition);
    composition = nullptr;
    composition_level = -1;
    rendered = false;
  }
};

std::vector<Label> read_labels (const GstStructure * s, guint max_labels)
{
  std::vector<Label> out;
  const guint n = std::min (ruclip_result_n_labels (s), max_labels);
  for (guint i = 0; i < n; ++i) {
    const gchar *text = ruclip_result_label (s, i);
    out.push_back ({text ? text : "", ruclip_result_score (s, i)});
  }
  return out;
}

Shown read_result (const GstStructure * s, guint max_labels)
{
  Shown r;
  r.labels = read_labels (s, max_labels);
  r.frame = ruclip_result_frame (s);
  r.source_pts = ruclip_result_source_pts (s);
  r.has_regions = ruclip_result_has_regions (s);
  for (guint i = 0; i < ruclip_result_n_regions (s); ++i) {
    const GstStructure *rs = ruclip_result_region (s, i);
    guint x = 0, y = 0, w = 0, h = 0;
    if (!rs || !ruclip_region_get_box (rs, NULL, NULL, &x, &y, &w, &h))
      continue;
    Region region;
    region.x = (gint) std::min<guint> (x, G_MAXINT / 2);
    region.y = (gint) std::min<guint> (y, G_MAXINT / 2);
    region.w = (gint) std::min<guint> (w, G_MAXINT / 2);
    region.h = (gint) std::min<guint> (h, G_MAXINT / 2);
    region.labels = read_labels (rs, max_labels);
    r.regions.push_back (std::move (region));
  }
  return r;
}

void set_color (cairo_t * cr, guint argb, double alpha_scale = 1.0)
{
  cairo_set_source_rgba (cr, ((argb >> 16) & 0xff) / 255.0, ((argb >> 8) & 0xff) / 255.0, (argb & 0xff) / 255.0,
      ((argb >> 24) & 0xff) / 255.0 * alpha_scale);
}

std::string score_text (double score)
{
  // Locale-independent "0.93".
  gchar buf[G_ASCII_DTOSTR_BUF_SIZE];
  return g_ascii_formatd (buf, sizeof buf, "%.2f", score);
}

struct Rect {
  gint x = 0, y = 0, w = 0, h = 0;
  bool empty () const { return w <= 0 || h <= 0; }
  Rect unite (const Rect & o) const
  {
    if (empty ())
      return o;
    if (o.empty ())
      return *this;
    const gint x0 = std::min (x, o.x), y0 = std::min (y, o.y);
    return {x0, y0, std::max (x + w, o.x + o.w) - x0, std::max (y + h, o.y + o.h) - y0};
  }
  Rect clip (gint width, gint height) const
  {
    const gint x0 = std::max (x, 0), y0 = std::max (y, 0);
    const gint x1 = std::min (x + w, width), y1 = std::min (y + h, height);
    return {x0, y0, std::max (x1 - x0, 0), std::max (y1 - y0, 0)};
  }
};

}  // namespace

struct _GstRuClipOverlay {
  GstVideoFilter parent;
  OverlayState *state;
};

#define gst_ruclip_overlay_parent_class parent_class
G_DEFINE_TYPE (GstRuClipOverlay, gst_ruclip_overlay, GST_TYPE_VIDEO_FILTER);
// Registering the meta here too lets an application read or build RuClipMeta
// with only this element made.
GST_ELEMENT_REGISTER_DEFINE_WITH_CODE (ruclipoverlay, "ruclipoverlay", GST_RANK_NONE, GST_TYPE_RUCLIP_OVERLAY,
    ruclip_meta_register ());

// Text laid out with the element's font, measured in pixels.
class Text {
public:
  Text (GstRuClipOverlay * self, PangoContext * context, const PangoFontDescription * font, const std::string & text,
      gint max_width = -1)
  {
    layout_ = pango_layout_new (context);
    pango_layout_set_font_description (layout_, font);
    pango_layout_set_single_paragraph_mode (layout_, TRUE);
    if (max_width > 0) {
      pango_layout_set_width (layout_, max_width * PANGO_SCALE);
      pango_layout_set_ellipsize (layout_, PANGO_ELLIPSIZE_END);
    }
    pango_layout_set_text (layout_, text.c_str (), -1);
    PangoRectangle logical;
    pango_layout_get_pixel_extents (layout_, NULL, &logical);
    width_ = logical.width;
    height_ = logical.height;
    OverlayState *st = self->state;
    if (pango_layout_get_unknown_glyphs_count (layout_) > 0 && !st->warned_glyphs) {
      st->warned_glyphs = true;
      GST_WARNING_OBJECT (self, "the font has no glyphs for some characters of '%s' (install a font that has "
          "them, e.g. fonts-dejavu-core, or set font-desc)", text.c_str ());
    }
  }
  ~Text () { g_object_unref (layout_); }
  Text (const Text &) = delete;
  Text & operator= (const Text &) = delete;
  gint width () const { return width_; }
  gint height () const { return height_; }
  void draw (cairo_t * cr, double x, double y) const
  {
    cairo_move_to (cr, x, y);
    pango_cairo_show_layout (cr, layout_);
  }

private:
  PangoLayout *layout_ = nullptr;
  gint width_ = 0, height_ = 0;
};

// Renders `draw` into a new transparent piece covering `area` of the frame
// (cairo coordinates are the frame's). False, with `error` set, when Cairo fails.
template <typename Draw>
static bool
render_piece (const Rect & area, Draw draw, std::vector<Piece> * out, std::string * error)
{
  GstBuffer *pixels = gst_buffer_new_allocate (NULL, (gsize) area.w * area.h * 4, NULL);
  gst_buffer_add_video_meta (pixels, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_OVERLAY_COMPOSITION_FORMAT_RGB, area.w,
      area.h);
  GstMapInfo map;
  if (!gst_buffer_map (pixels, &map, GST_MAP_READWRITE)) {
    gst_buffer_unref (pixels);
    *error = "could not map the drawing's memory";
    return false;
  }
  memset (map.data, 0, map.size);
  cairo_surface_t *surface = cairo_image_surface_create_for_data (map.data, CAIRO_FORMAT_ARGB32, area.w, area.h,
      area.w * 4);
  cairo_t *cr = cairo_create (surface);
  cairo_translate (cr, -area.x, -area.y);
  draw (cr);
  cairo_surface_flush (surface);
  const cairo_status_t status = cairo_status (cr);
  cairo_destroy (cr);
  cairo_surface_destroy (surface);
  gst_buffer_unmap (pixels, &map);
  if (status != CAIRO_STATUS_SUCCESS) {
    gst_buffer_unref (pixels);
    *error = cairo_status_to_string (status);
    return false;
  }
  out->push_back ({pixels, area.x, area.y, area.w, area.h});
  return true;
}

// Metrics shared by the panel and the region tags.
struct Metrics {
  gint line;     // height of a text line
  gint pad;      // inside the panel, around its content
  gint gap;      // between a label and its number
  gint bar;      // height of a score bar
  gint spacing;  // between rows
  gint stroke;   // region box outline
};

static Metrics
metrics_for (GstRuClipOverlay * self, PangoContext * context, const PangoFontDescription * font)
{
  const Text probe (self, context, font, "Ag");
  Metrics m;
  m.line = std::max (probe.height (), 1);
  m.pad = std::max (4, m.line / 3);
  m.gap = std::max (6, m.line);
  m.bar = std::max (3, m.line / 4);
  m.spacing = std::max (2, m.line / 6);
  m.stroke = std::max (2, m.line / 8);
  return m;
}

// The corner panel: title, then each label with its score as a bar and a number.
static bool
render_panel (GstRuClipOverlay * self, const Settings & s, const std::vector<Label> & labels,
    const PangoFontDescription * font, const Metrics & m, gint width, gint height, std::vector<Piece> * out,
    std::string * error)
{
  PangoContext *context = self->state->context;
  if (labels.empty () && s.title.empty ())
    return true;
  const gint margin = m.pad;
  const gint max_content = std::max (width - 2 * margin - 2 * m.pad, 1);

  std::vector<std::unique_ptr<Text>> scores;
  gint score_width = 0;
  if (s.show_scores)
    for (const auto & l : labels) {
      scores.push_back (std::make_unique<Text> (self, context, font, score_text (l.score)));
      score_width = std::max (score_width, scores.back ()->width ());
    }
  const gint number_room = s.show_scores ? m.gap + score_width : 0;
  std::unique_ptr<Text> title;
  if (!s.title.empty ())
    title = std::make_unique<Text> (self, context, font, s.title, max_content);
  std::vector<std::unique_ptr<Text>> texts;
  for (const auto & l : labels)
    texts.push_back (std::make_unique<Text> (self, context, font, l.text, std::max (max_content - number_room, 1)));

  gint content = title ? title->width () : 0;
  for (const auto & t : texts)
    content = std::max (content, t->width () + number_room);
  if (s.show_scores && !labels.empty ())
    content = std::max (content, 6 * m.line);  // bars long enough to compare
  content = std::min (content, max_content);

  const gint row = m.line + (s.show_scores ? m.bar : 0) + m.spacing;
  gint panel_h = 2 * m.pad + (title ? m.line + m.spacing : 0) + (gint) labels.size () * row - m.spacing;
  gint panel_w = content + 2 * m.pad;
  panel_w = std::min (panel_w, width);
  panel_h = std::min (panel_h, height);
  const bool right = s.position == RUCLIP_POSITION_TOP_RIGHT || s.position == RUCLIP_POSITION_BOTTOM_RIGHT;
  const bool bottom = s.position == RUCLIP_POSITION_BOTTOM_LEFT || s.position == RUCLIP_POSITION_BOTTOM_RIGHT;
  Rect area;
  area.w = panel_w;
  area.h = panel_h;
  area.x = right ? std::max (width - margin - panel_w, 0) : std::min (margin, width - panel_w);
  area.y = bottom ? std::max (height - margin - panel_h, 0) : std::min (margin, height - panel_h);
  GST_DEBUG_OBJECT (self, "panel %dx%d at %d,%d: %u labels%s", area.w, area.h, area.x, area.y, (guint) labels.size (),
      title ? ", title" : "");

  return render_piece (area, [&](cairo_t * cr) {
        set_color (cr, s.background_color);
        cairo_rectangle (cr, area.x, area.y, area.w, area.h);
        cairo_fill (cr);
        cairo_rectangle (cr, area.x, area.y, area.w, area.h);
        cairo_clip (cr);
        const double x = area.x + m.pad;
        double y = area.y + m.pad;
        if (title) {
          set_color (cr, s.text_color);
          title->draw (cr, x, y);
          y += m.line + m.spacing;
        }
        for (size_t i = 0; i < texts.size (); ++i) {
          set_color (cr, s.text_color);
          texts[i]->draw (cr, x, y);
          if (s.show_scores) {
            scores[i]->draw (cr, x + content - scores[i]->width (), y);
            y += m.line;
            set_color (cr, s.bar_color, 0.3);
            cairo_rectangle (cr, x, y, content, m.bar);
            cairo_fill (cr);
            set_color (cr, s.bar_color);
            cairo_rectangle (cr, x, y, content * std::clamp (labels[i].score, 0.0, 1.0), m.bar);
            cairo_fill (cr);
            y += m.bar + m.spacing;
          } else {
            y += m.line + m.spacing;
          }
        }
      }, out, error);
}

// A region: its box outlined, its best labels in a tag above it (inside its
// top when there is no room above).
static bool
render_region (GstRuClipOverlay * self, const Settings & s, const Region & r, const PangoFontDescription * font,
    const Metrics & m, gint width, gint height, std::vector<Piece> * out, std::string * error)
{
  PangoContext *context = self->state->context;
  const Rect box {r.x, r.y, r.w, r.h};
  const gint tag_pad = std::max (2, m.line / 6);
  const gint max_text = std::max (width - 2 * tag_pad, 1);
  std::vector<std::unique_ptr<Text>> lines;
  gint text_w = 0;
  for (const auto & l : r.labels) {
    lines.push_back (std::make_unique<Text> (self, context, font,
            s.show_scores ? l.text + "  " + score_text (l.score) : l.text, max_text));
    text_w = std::max (text_w, lines.back ()->width ());
  }
  Rect tag;
  if (!lines.empty ()) {
    tag.w = text_w + 2 * tag_pad;
    tag.h = (gint) lines.size () * m.line + 2 * tag_pad;
    tag.x = std::clamp (box.x, 0, std::max (width - tag.w, 0));
    tag.y = box.y - tag.h >= 0 ? box.y - tag.h : box.y;
  }
  const Rect area = box.unite (tag).clip (width, height);
  if (area.empty ())
    return true;
  GST_DEBUG_OBJECT (self, "region %d,%d %dx%d: %u labels, drawn in %dx%d at %d,%d", r.x, r.y, r.w, r.h,
      (guint) r.labels.size (), area.w, area.h, area.x, area.y);
  return render_piece (area, [&](cairo_t * cr) {
        // The outline lies inside the box: x .. x+w-1, y .. y+h-1.
        const double half = m.stroke / 2.0;
        set_color (cr, s.bar_color);
        cairo_set_line_width (cr, m.stroke);
        cairo_rectangle (cr, box.x + half, box.y + half, std::max (box.w - m.stroke, 0),
            std::max (box.h - m.stroke, 0));
        cairo_stroke (cr);
        if (lines.empty ())
          return;
        set_color (cr, s.background_color);
        cairo_rectangle (cr, tag.x, tag.y, tag.w, tag.h);
        cairo_fill (cr);
        set_color (cr, s.text_color);
        for (size_t i = 0; i < lines.size (); ++i)
          lines[i]->draw (cr, tag.x + tag_pad, tag.y + tag_pad + (gint) i * m.line);
      }, out, error);
}

// Draws `shown` into st->pieces (replacing them). False, with `error`, when Cairo failed.
static bool
render (GstRuClipOverlay * self, const Settings & s, const Shown & shown, gint width, gint height, std::string * error)
{
  OverlayState *st = self->state;
  st->clear_drawing ();
  PangoFontDescription *font = pango_font_description_from_string (s.font_desc.c_str ());
  if (pango_font_description_get_size (font) <= 0)
    pango_font_description_set_size (font, 12 * PANGO_SCALE);
  const Metrics m = metrics_for (self, st->context, font);
  std::vector<Piece> pieces;
  bool ok = true;
  if (shown.has_regions) {
    for (const auto & r : shown.regions)
      if (!(ok = render_region (self, s, r, font, m, width, height, &pieces, error)))
        break;
    // The title (if any) still goes in its corner.
    if (ok)
      ok = render_panel (self, s, {}, font, m, width, height, &pieces, error);
  } else {
    ok = render_panel (self, s, shown.labels, font, m, width, height, &pieces, error);
  }
  pango_font_description_free (font);
  if (!ok) {
    for (auto & p : pieces)
      gst_buffer_unref (p.pixels);
    return false;
  }
  st->pieces = std::move (pieces);
  st->rendered = true;
  return true;
}

// The drawing at fade `level` (FADE_LEVELS: opaque); NULL when there is nothing to draw.
static GstVideoOverlayComposition *
composition_at (OverlayState * st, int level)
{
  if (st->composition_level == level)
    return st->composition;
  if (st->composition)
    gst_video_overlay_composition_unref (st->composition);
  st->composition = nullptr;
  st->composition_level = level;
  if (st->pieces.empty ())
    return nullptr;
  st->composition = gst_video_overlay_composition_new (NULL);
  for (const auto & p : st->pieces) {
    GstBuffer *pixels = gst_buffer_ref (p.pixels);
    if (level < FADE_LEVELS) {
      // Premultiplied: scaling every channel by the same factor fades it.
      // (The rectangle's global alpha is not used: the blend applies it to
      // the alpha only, not to premultiplied colour.)
      GstBuffer *faded = gst_buffer_new_allocate (NULL, gst_buffer_get_size (pixels), NULL);
      gst_buffer_add_video_meta (faded, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_OVERLAY_COMPOSITION_FORMAT_RGB, p.w,
          p.h);
      GstMapInfo from, to;
      if (gst_buffer_map (pixels, &from, GST_MAP_READ)) {
        if (gst_buffer_map (faded, &to, GST_MAP_WRITE)) {
          for (gsize i = 0; i < from.size; ++i)
            to.data[i] = (guint8) ((from.data[i] * level + FADE_LEVELS / 2) / FADE_LEVELS);
          gst_buffer_unmap (faded, &to);
        }
        gst_buffer_unmap (pixels, &from);
      }
      gst_buffer_unref (pixels);
      pixels = faded;
    }
    GstVideoOverlayRectangle *rect = gst_video_overlay_rectangle_new_raw (pixels, p.x, p.y, p.w, p.h,
        GST_VIDEO_OVERLAY_FORMAT_FLAG_PREMULTIPLIED_ALPHA);
    gst_buffer_unref (pixels);
    gst_video_overlay_composition_add_rectangle (st->composition, rect);
    gst_video_overlay_rectangle_unref (rect);
  }
  return st->composition;
}

static bool
caps_have_overlay_meta (const GstCaps * caps)
{
  for (guint i = 0; caps && i < gst_caps_get_size (caps); ++i) {
    GstCapsFeatures *f = gst_caps_get_features (caps, i);
    if (f && !gst_caps_features_is_any (f) && gst_caps_features_contains (f, OVERLAY_META_FEATURE))
      return true;
  }
  return false;
}

// Whether downstream offers GstVideoOverlayCompositionMeta for `caps` in its allocation query.
static bool
downstream_takes_meta (GstRuClipOverlay * self, GstCaps * caps)
{
  GstQuery *query = gst_query_new_allocation (caps, FALSE);
  const gboolean answered = gst_pad_peer_query (GST_BASE_TRANSFORM_SRC_PAD (self), query);
  const bool takes = answered && gst_query_find_allocation_meta (query, GST_VIDEO_OVERLAY_COMPOSITION_META_API_TYPE,
      NULL);
  gst_query_unref (query);
  GST_DEBUG_OBJECT (self, "allocation query %s; overlay composition meta %s", answered ? "answered" : "failed",
      takes ? "offered" : "not offered");
  return takes;
}

static GstCaps *
gst_ruclip_overlay_transform_caps (GstBaseTransform * trans, GstPadDirection direction, GstCaps * caps,
    GstCaps * filter)
{
  GstCaps *result = gst_caps_new_empty ();
  for (guint i = 0; i < gst_caps_get_size (caps); ++i) {
    const GstStructure *s = gst_caps_get_structure (caps, i);
    GstCapsFeatures *f = gst_caps_get_features (caps, i);
    if (gst_caps_features_is_any (f)) {
      gst_caps_append_structure_full (result, gst_structure_copy (s), gst_caps_features_copy (f));
      continue;
    }
    if (direction == GST_PAD_SINK) {
      // Downstream may compose the drawing itself: that first, then plain video.
      GstCapsFeatures *with = gst_caps_features_copy (f);
      if (!gst_caps_features_contains (with, OVERLAY_META_FEATURE))
        gst_caps_features_add (with, OVERLAY_META_FEATURE);
      gst_caps_append_structure_full (result, gst_structure_copy (s), with);
      if (!gst_caps_features_contains (f, OVERLAY_META_FEATURE))
        gst_caps_append_structure_full (result, gst_structure_copy (s), gst_caps_features_copy (f));
    } else {
      GstCapsFeatures *without = gst_caps_features_copy (f);
      gst_caps_features_remove (without, OVERLAY_META_FEATURE);
      if (gst_caps_features_get_size (without) == 0) {
        gst_caps_features_free (without);
        without = gst_caps_features_new (GST_CAPS_FEATURE_MEMORY_SYSTEM_MEMORY, NULL);
      }
      gst_caps_append_structure_full (result, gst_structure_copy (s), without);
    }
  }
  if (filter) {
    GstCaps *intersection = gst_caps_intersect_full (filter, result, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (result);
    result = intersection;
  }
  GST_LOG_OBJECT (trans, "%s %" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT,
      direction == GST_PAD_SINK ? "sink" : "src", caps, result);
  return result;
}

// textoverlay's rule: attach only when downstream's allocation offers the
// meta; with caps that have the feature but no such offer, blend, in plain
// caps when downstream takes them.
static GstCaps *
gst_ruclip_overlay_fixate_caps (GstBaseTransform * trans, GstPadDirection direction, GstCaps * caps,
    GstCaps * othercaps)
{
  GstRuClipOverlay *self = GST_RUCLIP_OVERLAY (trans);
  othercaps = GST_BASE_TRANSFORM_CLASS (parent_class)->fixate_caps (trans, direction, caps, othercaps);
  if (direction != GST_PAD_SINK || !caps_have_overlay_meta (othercaps) || downstream_takes_meta (self, othercaps))
    return othercaps;
  GstCaps *plain = gst_caps_copy (othercaps);
  for (guint i = 0; i < gst_caps_get_size (plain); ++i)
    gst_caps_features_remove (gst_caps_get_features (plain, i), OVERLAY_META_FEATURE);
  if (gst_pad_peer_query_accept_caps (GST_BASE_TRANSFORM_SRC_PAD (trans), plain)) {
    GST_DEBUG_OBJECT (self, "downstream does not take the overlay meta: blending, in %" GST_PTR_FORMAT, plain);
    gst_caps_unref (othercaps);
    return plain;
  }
  gst_caps_unref (plain);
  return othercaps;
}

static gboolean
gst_ruclip_overlay_set_info (GstVideoFilter * filter, GstCaps * incaps, GstVideoInfo * /*in_info */ ,
    GstCaps * outcaps, GstVideoInfo * /*out_info */ )
{
  GstRuClipOverlay *self = GST_RUCLIP_OVERLAY (filter);
  GST_DEBUG_OBJECT (self, "caps %" GST_PTR_FORMAT " -> %" GST_PTR_FORMAT, incaps, outcaps);
  // Downstream is asked once the source pad has these caps (the first buffer).
  self->state->decide_attach = true;
  return TRUE;
}

static GstFlowReturn
gst_ruclip_overlay_transform_ip (GstBaseTransform * trans, GstBuffer * buffer)
{
  GstRuClipOverlay *self = GST_RUCLIP_OVERLAY (trans);
  OverlayState *st = self->state;
  const GstStructure *result = ruclip_buffer_get_result (buffer);
  if (!result) {
    GST_LOG_OBJECT (self, "buffer %" GST_TIME_FORMAT " has no RuClipMeta: untouched",
        GST_TIME_ARGS (GST_BUFFER_PTS (buffer)));
    return GST_FLOW_OK;
  }

  if (st->decide_attach) {
    st->decide_attach = false;
    GstCaps *caps = gst_pad_get_current_caps (GST_BASE_TRANSFORM_SRC_PAD (trans));
    st->attach = caps && caps_have_overlay_meta (caps) && downstream_takes_meta (self, caps);
    GST_DEBUG_OBJECT (self, "%s", st->attach ? "attaching the drawing as GstVideoOverlayCompositionMeta" :
        "blending the drawing into the frames");
    if (caps)
      gst_caps_unref (caps);
  }

  Settings s;
  guint64 version;
  {
    std::lock_guard<std::mutex> guard (st->lock);
    s = st->settings;
    version = st->settings_version;
  }
  const Shown shown = read_result (result, s.max_labels);

  int level = FADE_LEVELS;
  const GstClockTime pts = GST_BUFFER_PTS (buffer);
  if (s.fade && GST_CLOCK_TIME_IS_VALID (pts) && GST_CLOCK_TIME_IS_VALID (shown.source_pts) &&
      pts > shown.source_pts) {
    const guint64 age = pts - shown.source_pts;
    if (age >= 2 * s.fade_time) {
      level = 0;
    } else if (age > s.fade_time) {
      const double left = (double) (2 * s.fade_time - age) / (double) s.fade_time;
      level = std::clamp ((int) std::ceil (left * FADE_LEVELS), 1, FADE_LEVELS - 1);
    }
  }
  GST_LOG_OBJECT (self, "buffer %" GST_TIME_FORMAT ": result of frame %" G_GUINT64_FORMAT " (source-pts %"
      GST_TIME_FORMAT "), fade level %d/%d", GST_TIME_ARGS (pts), shown.frame, GST_TIME_ARGS (shown.source_pts),
      level, FADE_LEVELS);
  if (level == 0)
    return GST_FLOW_OK;

  const GstVideoInfo *info = &GST_VIDEO_FILTER (self)->in_info;
  const gint width = GST_VIDEO_INFO_WIDTH (info), height = GST_VIDEO_INFO_HEIGHT (info);
  if (!st->rendered || st->key_frame != shown.frame || st->key_pts != shown.source_pts ||
      st->key_version != version || st->key_width != width || st->key_height != height) {
    std::string error;
    if (!render (self, s, shown, width, height, &error)) {
      GST_ELEMENT_ERROR (self, LIBRARY, FAILED, ("Could not draw the labels"), ("Cairo: %s", error.c_str ()));
      return GST_FLOW_ERROR;
    }
    st->key_frame = shown.frame;
    st->key_pts = shown.source_pts;
    st->key_version = version;
    st->key_width = width;
    st->key_height = height;
    GST_DEBUG_OBJECT (self, "drew the result of frame %" G_GUINT64_FORMAT ": %u pieces", shown.frame,
        (guint) st->pieces.size ());
  }
  GstVideoOverlayComposition *composition = composition_at (st, level);
  if (!composition)
    return GST_FLOW_OK;

  if (st->attach) {
    GstVideoOverlayCompositionMeta *upstream = gst_buffer_get_video_overlay_composition_meta (buffer);
    if (upstream) {
      // Keep what upstream attached, ours on top.
      GstVideoOverlayComposition *merged = gst_video_overlay_composition_copy (upstream->overlay);
      for (guint i = 0; i < gst_video_overlay_composition_n_rectangles (composition); ++i)
        gst_video_overlay_composition_add_rectangle (merged, gst_video_overlay_composition_get_rectangle (composition,
                i));
      gst_buffer_remove_video_overlay_composition_meta (buffer, upstream);
      gst_buffer_add_video_overlay_composition_meta (buffer, merged);
      gst_video_overlay_composition_unref (merged);
    } else {
      gst_buffer_add_video_overlay_composition_meta (buffer, composition);
    }
    return GST_FLOW_OK;
  }

  GstVideoFrame frame;
  if (!gst_video_frame_map (&frame, info, buffer, GST_MAP_READWRITE)) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Could not map the video frame to draw the labels onto it"), (NULL));
    return GST_FLOW_ERROR;
  }
  if (!gst_video_overlay_composition_blend (composition, &frame) && !st->warned_blend) {
    st->warned_blend = true;
    GST_ELEMENT_WARNING (self, STREAM, FORMAT, ("Could not draw the labels onto %s video",
            gst_video_format_to_string (GST_VIDEO_INFO_FORMAT (info))), (NULL));
  }
  gst_video_frame_unmap (&frame);
  return GST_FLOW_OK;
}

static gboolean
gst_ruclip_overlay_stop (GstBaseTransform * trans)
{
  GstRuClipOverlay *self = GST_RUCLIP_OVERLAY (trans);
  self->state->clear_drawing ();
  self->state->decide_attach = true;
  self->state->attach = false;
  return TRUE;
}

static void
gst_ruclip_overlay_set_property (GObject * object, guint prop_id, const GValue * value, GParamSpec * pspec)
{
  OverlayState *st = GST_RUCLIP_OVERLAY (object)->state;
  std::lock_guard<std::mutex> guard (st->lock);
  Settings & s = st->settings;
  auto str = [value] { const gchar *v = g_value_get_string (value); return std::string (v ? v : ""); };
  switch (prop_id) {
    case PROP_POSITION: s.position = (RuClipPosition) g_value_get_enum (value); break;
    case PROP_FONT_DESC: s.font_desc = str (); break;
    case PROP_TEXT_COLOR: s.text_color = g_value_get_uint (value); break;
    case PROP_BAR_COLOR: s.bar_color = g_value_get_uint (value); break;
    case PROP_BACKGROUND_COLOR: s.background_color = g_value_get_uint (value); break;
    case PROP_MAX_LABELS: s.max_labels = g_value_get_uint (value); break;
    case PROP_TITLE: s.title = str (); break;
    case PROP_SHOW_SCORES: s.show_scores = g_value_get_boolean (value); break;
    case PROP_FADE: s.fade = g_value_get_boolean (value); break;
    case PROP_FADE_TIME: s.fade_time = g_value_get_uint64 (value); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec); return;
  }
  st->settings_version++;
}

static void
gst_ruclip_overlay_get_property (GObject * object, guint prop_id, GValue * value, GParamSpec * pspec)
{
  OverlayState *st = GST_RUCLIP_OVERLAY (object)->state;
  std::lock_guard<std::mutex> guard (st->lock);
  const Settings & s = st->settings;
  switch (prop_id) {
    case PROP_POSITION: g_value_set_enum (value, s.position); break;
    case PROP_FONT_DESC: g_value_set_string (value, s.font_desc.c_str ()); break;
    case PROP_TEXT_COLOR: g_value_set_uint (value, s.text_color); break;
    case PROP_BAR_COLOR: g_value_set_uint (value, s.bar_color); break;
    case PROP_BACKGROUND_COLOR: g_value_set_uint (value, s.background_color); break;
    case PROP_MAX_LABELS: g_value_set_uint (value, s.max_labels); break;
    case PROP_TITLE: g_value_set_string (value, s.title.c_str ()); break;
    case PROP_SHOW_SCORES: g_value_set_boolean (value, s.show_scores); break;
    case PROP_FADE: g_value_set_boolean (value, s.fade); break;
    case PROP_FADE_TIME: g_value_set_uint64 (value, s.fade_time); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec); break;
  }
}

static void
gst_ruclip_overlay_finalize (GObject * object)
{
  GstRuClipOverlay *self = GST_RUCLIP_OVERLAY (object);
  OverlayState *st = self->state;
  st->clear_drawing ();
  g_clear_object (&st->context);
  g_clear_object (&st->font_map);
  delete st;
  self->state = NULL;
  G_OBJECT_CLASS (parent_class)->finalize (object);
}

static void
gst_ruclip_overlay_init (GstRuClipOverlay * self)
{
  OverlayState *st = new OverlayState ();
  self->state = st;
  // A font map of its own: Pango objects are not shared between threads.
  st->font_map = pango_cairo_font_map_new ();
  st->context = pango_font_map_create_context (st->font_map);
  cairo_font_options_t *options = cairo_font_options_create ();
  cairo_font_options_set_antialias (options, CAIRO_ANTIALIAS_GRAY);
  cairo_font_options_set_hint_metrics (options, CAIRO_HINT_METRICS_ON);
  pango_cairo_context_set_font_options (st->context, options);
  cairo_font_options_destroy (options);
  // In place, never passthrough: a buffer with a result is drawn on (or gets
  // the composition meta); one without passes as it came.
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), FALSE);
}

static void
gst_ruclip_overlay_class_init (GstRuClipOverlayClass * klass)
{
  GObjectClass *gobject_class = G_OBJECT_CLASS (klass);
  GstElementClass *element_class = GST_ELEMENT_CLASS (klass);
  GstBaseTransformClass *trans_class = GST_BASE_TRANSFORM_CLASS (klass);
  GstVideoFilterClass *filter_class = GST_VIDEO_FILTER_CLASS (klass);

  gobject_class->set_property = gst_ruclip_overlay_set_property;
  gobject_class->get_property = gst_ruclip_overlay_get_property;
  gobject_class->finalize = gst_ruclip_overlay_finalize;

  const GParamFlags rw_playing = (GParamFlags) (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS |
      GST_PARAM_MUTABLE_PLAYING);

  g_object_class_install_property (gobject_class, PROP_POSITION,
      g_param_spec_enum ("position", "Position",
          "Corner of the frame for the panel of labels (and the title). Regions' labels go beside their boxes",
          GST_TYPE_RUCLIP_POSITION, DEFAULT_POSITION, rw_playing));
  g_object_class_install_property (gobject_class, PROP_FONT_DESC,
      g_param_spec_string ("font-desc", "Font description",
          "Pango font description of the text, e.g. \"Sans Bold 16\" (family, style, size in points); used as "
          "given, not scaled with the frame. A size of 0 or none means 12. The font must have Cyrillic glyphs "
          "(DejaVu, Noto, Liberation do); a warning is logged when one is missing",
          DEFAULT_FONT_DESC, rw_playing));
  g_object_class_install_property (gobject_class, PROP_TEXT_COLOR,
      g_param_spec_uint ("text-color", "Text color", "Colour of the text, as 0xAARRGGBB", 0, G_MAXUINT32,
          DEFAULT_TEXT_COLOR, rw_playing));
  g_object_class_install_property (gobject_class, PROP_BAR_COLOR,
      g_param_spec_uint ("bar-color", "Bar color",
          "Colour of the score bars and of the regions' box outlines, as 0xAARRGGBB (a bar's empty part is the "
          "same colour at 30% of its opacity)", 0, G_MAXUINT32, DEFAULT_BAR_COLOR, rw_playing));
  g_object_class_install_property (gobject_class, PROP_BACKGROUND_COLOR,
      g_param_spec_uint ("background-color", "Background color",
          "Colour behind the text (the panel, the regions' label tags), as 0xAARRGGBB; the default is black at "
          "63% opacity. 0 draws no background", 0, G_MAXUINT32, DEFAULT_BACKGROUND_COLOR, rw_playing));
  g_object_class_install_property (gobject_class, PROP_MAX_LABELS,
      g_param_spec_uint ("max-labels", "Maximum labels",
          "Draw at most this many labels of a result (of each region), best first", 1, 100, DEFAULT_MAX_LABELS,
          rw_playing));
  g_object_class_install_property (gobject_class, PROP_TITLE,
      g_param_spec_string ("title", "Title",
          "A line of text above the labels, e.g. the model's name; empty: none", NULL, rw_playing));
  g_object_class_install_property (gobject_class, PROP_SHOW_SCORES,
      g_param_spec_boolean ("show-scores", "Show scores",
          "Draw each label's score (probability) as a bar and as a number; false: the labels only",
          DEFAULT_SHOW_SCORES, rw_playing));
  g_object_class_install_property (gobject_class, PROP_FADE,
      g_param_spec_boolean ("fade", "Fade",
          "Fade out a result that is not renewed: older than fade-time (buffer PTS minus the result's "
          "source-pts) it fades over one more fade-time and is then no longer drawn. false: the last result stays",
          DEFAULT_FADE, rw_playing));
  g_object_class_install_property (gobject_class, PROP_FADE_TIME,
      g_param_spec_uint64 ("fade-time", "Fade time",
          "Nanoseconds of PTS a result is drawn fully before it fades out (fade=true)", 1, MAX_FADE_TIME,
          DEFAULT_FADE_TIME, rw_playing));

  GstCaps *caps = gst_caps_from_string (GST_VIDEO_CAPS_MAKE (VIDEO_FORMATS));
  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("sink", GST_PAD_SINK, GST_PAD_ALWAYS, caps));
  GstCaps *src_caps = gst_caps_from_string (GST_VIDEO_CAPS_MAKE_WITH_FEATURES (GST_CAPS_FEATURE_MEMORY_SYSTEM_MEMORY ", "
          OVERLAY_META_FEATURE, VIDEO_FORMATS));
  gst_caps_append (src_caps, caps);
  gst_element_class_add_pad_template (element_class, gst_pad_template_new ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
          src_caps));
  gst_caps_unref (src_caps);

  gst_element_class_set_static_metadata (element_class, "ruCLIP label overlay", "Filter/Editor/Video",
      "Draws ruclipfilter's labels (RuClipMeta) onto the video: a panel of labels with score bars, or each "
      "region's box and label", "ruclip-gst developers");

  trans_class->transform_caps = GST_DEBUG_FUNCPTR (gst_ruclip_overlay_transform_caps);
  trans_class->fixate_caps = GST_DEBUG_FUNCPTR (gst_ruclip_overlay_fixate_caps);
  trans_class->transform_ip = GST_DEBUG_FUNCPTR (gst_ruclip_overlay_transform_ip);
  trans_class->stop = GST_DEBUG_FUNCPTR (gst_ruclip_overlay_stop);
  trans_class->transform_ip_on_passthrough = FALSE;
  filter_class->set_info = GST_DEBUG_FUNCPTR (gst_ruclip_overlay_set_info);

  gst_type_mark_as_plugin_api (GST_TYPE_RUCLIP_POSITION, (GstPluginAPIFlags) 0);
  GST_DEBUG_CATEGORY_INIT (gst_ruclip_overlay_debug, "ruclipoverlay", 0, "ruCLIP label overlay");
}

// The similarity picture: layout and colours in similarity_picture.h.
#include "similarity_picture.h"

#include <cairo.h>
#include <pango/pangocairo.h>

#include <algorithm>
#include <cerrno>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>

#include "ruclip/error.h"
#include "ruclip/tools/image_files.h"

namespace ruclip_cli {
namespace {

using L = SimilarityLayout;

struct Rgb {
  double r, g, b;
};

// matplotlib's viridis at 0, 1/8, ..., 1: perceptually uniform, its lightness
// rising monotonically, so darker always means a lower cosine.
constexpr std::array<uint32_t, 9> kViridis{0x440154, 0x472d7b, 0x3b528b, 0x2c728e, 0x21918c,
                                           0x28ae80, 0x5ec962, 0xaddc30, 0xfde725};

Rgb hex(uint32_t c) { return {((c >> 16) & 0xff) / 255.0, ((c >> 8) & 0xff) / 255.0, (c & 0xff) / 255.0}; }

// t in [0, 1], linear between the stops (as Cairo's gradient of the same stops in the colour bar).
Rgb viridis(double t) {
  t = std::clamp(t, 0.0, 1.0) * (kViridis.size() - 1);
  const size_t i = std::min(static_cast<size_t>(t), kViridis.size() - 2);
  const double f = t - i;
  const Rgb a = hex(kViridis[i]), b = hex(kViridis[i + 1]);
  return {a.r + (b.r - a.r) * f, a.g + (b.g - a.g) * f, a.b + (b.b - a.b) * f};
}

double luma(const Rgb& c) { return 0.2126 * c.r + 0.7152 * c.g + 0.0722 * c.b; }

struct CairoDeleter {
  void operator()(cairo_t* cr) const { cairo_destroy(cr); }
  void operator()(cairo_surface_t* s) const { cairo_surface_destroy(s); }
  void operator()(cairo_pattern_t* p) const { cairo_pattern_destroy(p); }
  void operator()(PangoLayout* l) const { g_object_unref(l); }
  void operator()(PangoFontDescription* f) const { pango_font_description_free(f); }
};
template <typename T>
using Owned = std::unique_ptr<T, CairoDeleter>;

// A decoded image as a Cairo surface (ARGB32: premultiplied, native-endian words).
Owned<cairo_surface_t> to_surface(const ruclip::Image& image, const std::string& path) {
  Owned<cairo_surface_t> s(cairo_image_surface_create(CAIRO_FORMAT_ARGB32, image.width, image.height));
  if (cairo_surface_status(s.get()) != CAIRO_STATUS_SUCCESS)
    throw ruclip::Error("cannot draw image '" + path + "': " + cairo_status_to_string(cairo_surface_status(s.get())));
  cairo_surface_flush(s.get());
  unsigned char* data = cairo_image_surface_get_data(s.get());
  const int stride = cairo_image_surface_get_stride(s.get());
  const int channels = image.format == ruclip::PixelFormat::RGBA ? 4 : image.format == ruclip::PixelFormat::RGB ? 3 : 1;
  for (int y = 0; y < image.height; ++y) {
    const uint8_t* in = image.pixels.data() + static_cast<size_t>(y) * image.width * channels;
    auto* out = reinterpret_cast<uint32_t*>(data + static_cast<size_t>(y) * stride);
    for (int x = 0; x < image.width; ++x, in += channels) {
      uint32_t r = in[0], g = in[0], b = in[0], a = 255;
      if (channels >= 3) g = in[1], b = in[2];
      if (channels == 4) {
        a = in[3];
        r = (r * a + 127) / 255, g = (g * a + 127) / 255, b = (b * a + 127) / 255;
      }
      out[x] = a << 24 | r << 16 | g << 8 | b;
    }
  }
  cairo_surface_mark_dirty(s.get());
  return s;
}

std::string number(float v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  return buf;
}

class Painter {
 public:
  explicit Painter(cairo_t* cr) : cr_(cr) {}

  // `text` in `font`, `width` px wide (0: unbounded) and at most `max_lines`
  // lines, its top-left at (x, y) or, with `centre_y`, centred on y.
  void text(const std::string& text, const char* font, double x, double y, int width, PangoAlignment align,
            int max_lines, const Rgb& colour, bool centre_y) {
    Owned<PangoLayout> layout(pango_cairo_create_layout(cr_));
    Owned<PangoFontDescription> desc(pango_font_description_from_string(font));
    pango_layout_set_font_description(layout.get(), desc.get());
    if (width > 0) {
      pango_layout_set_width(layout.get(), width * PANGO_SCALE);
      pango_layout_set_wrap(layout.get(), PANGO_WRAP_WORD_CHAR);
      pango_layout_set_ellipsize(layout.get(), PANGO_ELLIPSIZE_END);
      pango_layout_set_height(layout.get(), -max_lines);  // negative: a number of lines
    }
    pango_layout_set_alignment(layout.get(), align);
    pango_layout_set_text(layout.get(), text.c_str(), -1);
    if (pango_layout_get_unknown_glyphs_count(layout.get()) > 0) missing_glyphs.push_back(text);
    PangoRectangle logical;
    pango_layout_get_pixel_extents(layout.get(), nullptr, &logical);
    cairo_set_source_rgb(cr_, colour.r, colour.g, colour.b);
    cairo_move_to(cr_, x, centre_y ? y - logical.height / 2.0 - logical.y : y);
    pango_cairo_show_layout(cr_, layout.get());
  }

  std::vector<std::string> missing_glyphs;

 private:
  cairo_t* cr_;
};

constexpr Rgb kInk{0.1, 0.1, 0.1};
constexpr Rgb kWhite{1, 1, 1};
constexpr Rgb kFrame{0.75, 0.75, 0.75};
// A family list: DejaVu Sans (fonts-dejavu-core, full Cyrillic) where installed, else fontconfig's Sans.
constexpr const char* kTitleFont = "DejaVu Sans, Sans 15";
constexpr const char* kLabelFont = "DejaVu Sans, Sans 12";
constexpr const char* kCellFont = "DejaVu Sans, Sans 13";
constexpr const char* kBarFont = "DejaVu Sans, Sans 10";

}  // namespace

std::vector<std::string> write_similarity_png(const std::string& path, const std::string& title,
                                              const std::vector<std::string>& texts,
                                              const std::vector<std::string>& image_paths,
                                              const std::vector<std::vector<float>>& cosine) {
  const int n_texts = static_cast<int>(texts.size()), n_images = static_cast<int>(image_paths.size());
  if (n_texts == 0 || n_images == 0 || cosine.size() != texts.size())
    throw ruclip::Error("similarity picture '" + path + "': need a cosine row per text and at least one image");
  for (const auto& row : cosine)
    if (row.size() != image_paths.size())
      throw ruclip::Error("similarity picture '" + path + "': a cosine row does not have one value per image");

  // Decode first: an unreadable image fails before anything is drawn or written.
  std::vector<Owned<cairo_surface_t>> thumbs;
  for (const auto& p : image_paths) thumbs.push_back(to_surface(ruclip::load_image(p), p));

  const int width = L::width(n_images), height = L::height(n_texts);
  Owned<cairo_surface_t> surface(cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height));
  if (cairo_surface_status(surface.get()) != CAIRO_STATUS_SUCCESS)
    throw ruclip::Error("similarity picture '" + path + "': cannot make a " + std::to_string(width) + "x" +
                        std::to_string(height) + " picture (" +
                        cairo_status_to_string(cairo_surface_status(surface.get())) + ")");
  Owned<cairo_t> owned_cr(cairo_create(surface.get()));
  cairo_t* cr = owned_cr.get();
  Painter paint(cr);
  cairo_set_source_rgb(cr, 1, 1, 1);
  cairo_paint(cr);

  float lo = cosine[0][0], hi = lo;
  for (const auto& row : cosine)
    for (float v : row) lo = std::min(lo, v), hi = std::max(hi, v);
  auto shade = [&](float v) { return viridis(hi > lo ? (v - lo) / (hi - lo) : 0.5); };

  paint.text(title, kTitleFont, L::margin, L::margin + L::title_height / 2.0, width - 2 * L::margin,
             PANGO_ALIGN_CENTER, 1, kInk, true);

  // Thumbnails, aspect kept, on whole pixels so that their edges stay sharp.
  const int box = L::cell - 2 * L::thumb_padding;
  for (int j = 0; j < n_images; ++j) {
    cairo_surface_t* t = thumbs[j].get();
    const int w = cairo_image_surface_get_width(t), h = cairo_image_surface_get_height(t);
    const double s = std::min(static_cast<double>(box) / w, static_cast<double>(box) / h);
    const int dw = std::max(1, static_cast<int>(std::lround(w * s))), dh = std::max(1, static_cast<int>(std::lround(h * s)));
    const int x = L::grid_x() + j * L::cell + (L::cell - dw) / 2, y = L::margin + L::title_height + (L::cell - dh) / 2;
    cairo_save(cr);
    cairo_rectangle(cr, x, y, dw, dh);
    cairo_clip(cr);
    cairo_translate(cr, x, y);
    cairo_scale(cr, static_cast<double>(dw) / w, static_cast<double>(dh) / h);
    cairo_set_source_surface(cr, t, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_GOOD);
    cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD);  // no fading at the edges
    cairo_paint(cr);
    cairo_restore(cr);
    // A hairline just outside, so white pictures keep their edges on the white page.
    cairo_set_source_rgb(cr, kFrame.r, kFrame.g, kFrame.b);
    cairo_set_line_width(cr, 1);
    cairo_rectangle(cr, x - 0.5, y - 0.5, dw + 1, dh + 1);
    cairo_stroke(cr);
  }

  for (int i = 0; i < n_texts; ++i) {
    const double row_y = L::grid_y() + i * L::cell;
    paint.text(texts[i], kLabelFont, L::margin, row_y + L::cell / 2.0, L::label_width - L::label_gap,
               PANGO_ALIGN_RIGHT, 3, kInk, true);
    for (int j = 0; j < n_images; ++j) {
      const Rgb c = shade(cosine[i][j]);
      const double x = L::grid_x() + j * L::cell;
      cairo_set_source_rgb(cr, c.r, c.g, c.b);
      cairo_rectangle(cr, x, row_y, L::cell, L::cell);
      cairo_fill(cr);
      paint.text(number(cosine[i][j]), kCellFont, x, row_y + L::cell / 2.0, L::cell, PANGO_ALIGN_CENTER, 1,
                 luma(c) < 0.45 ? kWhite : kInk, true);
    }
  }

  // The colour bar: lowest cosine at the bottom, highest at the top.
  const double bar_x = L::grid_x() + n_images * L::cell + L::bar_gap, bar_top = L::grid_y();
  const double bar_h = n_texts * L::cell;
  Owned<cairo_pattern_t> gradient(cairo_pattern_create_linear(0, bar_top + bar_h, 0, bar_top));
  for (size_t k = 0; k < kViridis.size(); ++k) {
    const Rgb c = hex(kViridis[k]);
    cairo_pattern_add_color_stop_rgb(gradient.get(), static_cast<double>(k) / (kViridis.size() - 1), c.r, c.g, c.b);
  }
  cairo_set_source(cr, gradient.get());
  cairo_rectangle(cr, bar_x, bar_top, L::bar_width, bar_h);
  cairo_fill(cr);
  cairo_set_source_rgb(cr, kFrame.r, kFrame.g, kFrame.b);
  cairo_rectangle(cr, bar_x - 0.5, bar_top - 0.5, L::bar_width + 1, bar_h + 1);
  cairo_stroke(cr);
  const std::array<std::pair<double, float>, 3> ticks{{{bar_top + 6, hi},
                                                       {bar_top + bar_h / 2, (lo + hi) / 2},
                                                       {bar_top + bar_h - 6, lo}}};
  for (const auto& [y, v] : ticks)
    paint.text(number(v), kBarFont, bar_x + L::bar_width + 6, y, 0, PANGO_ALIGN_LEFT, 1, kInk, true);

  cairo_surface_flush(surface.get());
  if (cairo_status(cr) != CAIRO_STATUS_SUCCESS)
    throw ruclip::Error("similarity picture '" + path + "': drawing failed (" + cairo_status_to_string(cairo_status(cr)) + ")");
  errno = 0;
  const cairo_status_t written = cairo_surface_write_to_png(surface.get(), path.c_str());
  if (written != CAIRO_STATUS_SUCCESS)  // errno says why when Cairo's fopen or fwrite failed
    throw ruclip::Error("cannot write '" + path + "': " + (errno ? std::strerror(errno) : cairo_status_to_string(written)));

  std::vector<std::string> warnings;
  for (const auto& t : paint.missing_glyphs)
    warnings.push_back("the font has no glyphs for some characters of '" + t +
                       "' (install a font that has them, e.g. fonts-dejavu-core)");
  return warnings;
}

}  // namespace ruclip_cli

// Synthetic shapes with Russian captions: see ruclip/synthetic.h.
#include "ruclip/tools/synthetic.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "ruclip/error.h"
#include "ruclip/tools/image_files.h"

namespace ruclip::synth {
namespace {

constexpr double kPi = 3.14159265358979323846;

// ---- Words -----------------------------------------------------------------

// The forms a caption needs of an adjective: nominative singular m/f,
// nominative and genitive plural, prepositional singular masculine ("на ... фоне").
struct Adjective {
  const char* m;
  const char* f;
  const char* pl_nom;
  const char* pl_gen;
  const char* m_prep;
};

const Adjective kColorWords[] = {
    {"красный", "красная", "красные", "красных", "красном"},
    {"оранжевый", "оранжевая", "оранжевые", "оранжевых", "оранжевом"},
    {"жёлтый", "жёлтая", "жёлтые", "жёлтых", "жёлтом"},
    {"зелёный", "зелёная", "зелёные", "зелёных", "зелёном"},
    {"синий", "синяя", "синие", "синих", "синем"},  // soft stem
    {"фиолетовый", "фиолетовая", "фиолетовые", "фиолетовых", "фиолетовом"},
    {"белый", "белая", "белые", "белых", "белом"},
    {"чёрный", "чёрная", "чёрные", "чёрных", "чёрном"},
    {"серый", "серая", "серые", "серых", "сером"},
};
static_assert(sizeof(kColorWords) / sizeof(kColorWords[0]) == kColorCount, "a word row per color");

const Adjective kSmall{"маленький", "маленькая", "маленькие", "маленьких", "маленьком"};
const Adjective kLarge{"большой", "большая", "большие", "больших", "большом"};

// Nominative singular, and genitive singular (the form after 2, 3, 4).
struct Noun {
  const char* nom;
  const char* gen_sg;
  bool feminine;
};

const Noun kShapeWords[] = {
    {"круг", "круга", false},
    {"квадрат", "квадрата", false},
    {"треугольник", "треугольника", false},
    {"звезда", "звезды", true},
};
static_assert(sizeof(kShapeWords) / sizeof(kShapeWords[0]) == kShapeCount, "a word row per shape");

const Noun kFigure{"фигура", "фигуры", true};

const char* const kPositionWords[] = {"", "слева", "справа", "вверху", "внизу", "в центре"};

// How an adjective agrees with a noun after a numeral: count 1 in the noun's
// gender; 2-4 with a masculine noun the genitive plural ("два красных круга"),
// with a feminine one the nominative plural ("две красные звезды").
const char* agree(const Adjective& a, const Noun& n, int count) {
  if (count == 1) return n.feminine ? a.f : a.m;
  return n.feminine ? a.pl_nom : a.pl_gen;
}

const char* numeral(int count, bool feminine) {
  switch (count) {
    case 2: return feminine ? "две" : "два";
    case 3: return "три";
    case 4: return "четыре";
    default: return "";
  }
}

// Whole-screen captions; {} is the color's masculine nominative.
const char* const kSolidTemplates[] = {"{} фон", "{} экран", "сплошной {} цвет", "{} цвет", "однотонный {} фон",
                                       "весь экран {}"};

std::string fill(const char* pattern, const char* word) {
  std::string s = pattern;
  s.replace(s.find("{}"), 2, word);
  return s;
}

// ---- Colors ------------------------------------------------------------------

const std::array<uint8_t, 3> kCanonical[] = {
    {225, 30, 30},    // red: hue 0
    {240, 130, 20},   // orange: hue 30
    {240, 215, 25},   // yellow: hue 53
    {35, 165, 55},    // green: hue 129
    {30, 80, 220},    // blue: hue 224
    {140, 50, 190},   // purple: hue 279
    {255, 255, 255},  // white
    {0, 0, 0},        // black
    {128, 128, 128},  // gray
};
static_assert(sizeof(kCanonical) / sizeof(kCanonical[0]) == kColorCount, "an RGB row per color");

bool chromatic(Color c) { return c != Color::White && c != Color::Black && c != Color::Gray; }

struct Hsv {
  double h, s, v;  // h in degrees [0, 360), s and v in [0, 1]
};

Hsv to_hsv(double r, double g, double b) {
  r /= 255, g /= 255, b /= 255;
  const double mx = std::max({r, g, b}), mn = std::min({r, g, b}), d = mx - mn;
  double h = 0;
  if (d > 0) {
    if (mx == r) h = 60 * std::fmod((g - b) / d, 6.0);
    else if (mx == g) h = 60 * ((b - r) / d + 2);
    else h = 60 * ((r - g) / d + 4);
  }
  if (h < 0) h += 360;
  return {h, mx > 0 ? d / mx : 0, mx};
}

std::array<uint8_t, 3> to_rgb(Hsv c) {
  double h = std::fmod(c.h, 360.0);
  if (h < 0) h += 360;
  const double s = std::clamp(c.s, 0.0, 1.0), v = std::clamp(c.v, 0.0, 1.0);
  const double chroma = v * s, x = chroma * (1 - std::fabs(std::fmod(h / 60, 2.0) - 1)), m = v - chroma;
  double r = 0, g = 0, b = 0;
  switch (static_cast<int>(h / 60)) {
    case 0: r = chroma, g = x; break;
    case 1: r = x, g = chroma; break;
    case 2: g = chroma, b = x; break;
    case 3: g = x, b = chroma; break;
    case 4: r = x, b = chroma; break;
    default: r = chroma, b = x; break;
  }
  auto q = [](double u) { return static_cast<uint8_t>(std::lround(std::clamp(u, 0.0, 1.0) * 255)); };
  return {q(r + m), q(g + m), q(b + m)};
}

double hue_distance(double a, double b) {
  const double d = std::fabs(a - b);
  return std::min(d, 360 - d);
}

// ---- Randomness ----------------------------------------------------------------

// Our own transforms of the engine's bits, so samples are the same with every
// standard library.
class Rng {
 public:
  explicit Rng(std::mt19937_64& engine) : g_(engine) {}
  double uniform() { return static_cast<double>(g_() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double a, double b) { return a + (b - a) * uniform(); }
  size_t index(size_t n) { return std::min(n - 1, static_cast<size_t>(uniform() * static_cast<double>(n))); }
  bool chance(double p) { return uniform() < p; }
  double normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * kPi * u2);
  }
  // An index drawn with the given weights (they need not sum to 1).
  template <typename Weights>
  size_t weighted(const Weights& weights) {
    double total = 0;
    for (double w : weights) total += w;
    double u = uniform() * total;
    size_t i = 0;
    for (double w : weights) {
      if (u < w) return i;
      u -= w, ++i;
    }
    return weights.size() - 1;
  }

 private:
  std::mt19937_64& g_;
};

// ---- The two renderers ---------------------------------------------------------

struct Range {
  double lo, hi;
};

struct Region {
  Range x, y;  // object center, as fractions of width and height
};

struct StyleParams {
  int width, height;
  int supersample;                 // draw at this multiple, then INTER_AREA down
  Range small, medium, large;      // object radius / min(width, height)
  Range ball;                      // videotestsrc ball radius / min(width, height)
  double margin;                   // border kept free / min(width, height)
  Region regions[6];               // by Position (Unspecified unused), fractions of the centered square
  double hue_jitter;               // degrees either side
  Range sv_factor;                 // saturation and value scaled by this
  Range white_v, black_v, gray_v;  // value ranges of the achromatic tones
  double rotation;                 // max rotation (radians) either side of upright; >= pi: any
  double star_inner_lo, star_inner_hi;
  double p_solid, p_ball;
  std::array<double, 3> count_weights;    // 1, 2, 3 objects
  std::array<double, 3> single_sizes;     // small, medium, large for one object
  std::array<double, 4> background_tone;  // white, black, gray, another color
  double p_gradient, p_noise;
  bool always_both_words;  // captions always name color and shape
  double p_size_word, p_position_word, p_background_word;
};

const StyleParams kTrain{
    64, 64, 1,
    {0.09, 0.14}, {0.15, 0.22}, {0.26, 0.34}, {0.06, 0.13}, 0.03,
    {{{0, 0}, {0, 0}},
     {{0.14, 0.30}, {0.35, 0.65}}, {{0.70, 0.86}, {0.35, 0.65}},
     {{0.35, 0.65}, {0.14, 0.30}}, {{0.35, 0.65}, {0.70, 0.86}},
     {{0.42, 0.58}, {0.42, 0.58}}},
    7.0, {0.85, 1.10}, {0.90, 1.00}, {0.00, 0.14}, {0.40, 0.62},
    10.0, 0.36, 0.46,
    0.10, 0.35,
    {0.70, 0.15, 0.15}, {0.30, 0.40, 0.30}, {0.25, 0.20, 0.20, 0.35},
    0.25, 0.25,
    false, 0.6, 0.6, 0.5};

const StyleParams kEval{
    96, 72, 2,
    {0.11, 0.15}, {0.17, 0.23}, {0.28, 0.38}, {0.075, 0.095}, 0.06,
    {{{0, 0}, {0, 0}},
     {{0.18, 0.28}, {0.42, 0.58}}, {{0.72, 0.82}, {0.42, 0.58}},
     {{0.42, 0.58}, {0.18, 0.28}}, {{0.42, 0.58}, {0.72, 0.82}},
     {{0.46, 0.54}, {0.46, 0.54}}},
    4.0, {0.92, 1.05}, {0.93, 1.00}, {0.00, 0.10}, {0.45, 0.58},
    20.0 * kPi / 180, 0.382, 0.382,
    0.10, 0.35,
    {0.80, 0.10, 0.10}, {0.30, 0.35, 0.35}, {0.35, 0.20, 0.25, 0.20},
    0.0, 0.0,
    true, 0.5, 0.5, 0.5};

const StyleParams& params(Style style) { return style == Style::Eval ? kEval : kTrain; }

using Rgb = std::array<uint8_t, 3>;

Rgb jitter(Color c, const StyleParams& p, Rng& r) {
  switch (c) {
    case Color::White:
      return to_rgb({r.uniform(0, 360), r.uniform(0, 0.05), r.uniform(p.white_v.lo, p.white_v.hi)});
    case Color::Black: return to_rgb({r.uniform(0, 360), r.uniform(0, 0.3), r.uniform(p.black_v.lo, p.black_v.hi)});
    case Color::Gray: return to_rgb({r.uniform(0, 360), r.uniform(0, 0.04), r.uniform(p.gray_v.lo, p.gray_v.hi)});
    default: break;
  }
  const Rgb& k = kCanonical[static_cast<int>(c)];
  const Hsv h = to_hsv(k[0], k[1], k[2]);
  return to_rgb({h.h + r.uniform(-p.hue_jitter, p.hue_jitter), h.s * r.uniform(p.sv_factor.lo, p.sv_factor.hi),
                 h.v * r.uniform(p.sv_factor.lo, p.sv_factor.hi)});
}

double rgb_distance(const Rgb& a, const Rgb& b) {
  double d = 0;
  for (int i = 0; i < 3; ++i) d += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
  return std::sqrt(d);
}

constexpr double kMinContrast = 80;  // RGB distance between an object and its background

cv::Scalar scalar(const Rgb& c) { return cv::Scalar(c[0], c[1], c[2]); }  // canvas is RGB

// Hue of a color's canonical RGB.
double canonical_hue(Color c) {
  const Rgb& k = kCanonical[static_cast<int>(c)];
  return to_hsv(k[0], k[1], k[2]).h;
}

// A background tone for an object of color `fg`: never the same color, nor a
// hue neighbour (red and orange, orange and yellow, blue and purple), so the object stands out.
Color pick_background(Color fg, const std::array<double, 4>& tone_weights, Rng& r) {
  for (;;) {
    Color bg;
    switch (r.weighted(tone_weights)) {
      case 0: bg = Color::White; break;
      case 1: bg = Color::Black; break;
      case 2: bg = Color::Gray; break;
      default: bg = static_cast<Color>(r.index(6)); break;  // the six chromatic colors
    }
    if (bg == fg) continue;
    if (chromatic(fg) && chromatic(bg) && hue_distance(canonical_hue(fg), canonical_hue(bg)) < 60) continue;
    return bg;
  }
}

// ---- Drawing -----------------------------------------------------------------------

constexpr int kShift = 4;  // subpixel bits for OpenCV's drawing
constexpr double kOne = 1 << kShift;

cv::Point fixed(double x, double y) {
  return cv::Point(static_cast<int>(std::lround(x * kOne)), static_cast<int>(std::lround(y * kOne)));
}

// Area and perimeter of a shape drawn inside the unit circle.
std::pair<double, double> unit_area_perimeter(Shape shape, double star_inner) {
  switch (shape) {
    case Shape::Circle: return {kPi * 0.81, 2 * kPi * 0.9};
    case Shape::Square: return {2.0, 4 * std::sqrt(2.0)};
    case Shape::Triangle: return {3 * std::sqrt(3.0) / 4, 3 * std::sqrt(3.0)};
    case Shape::Star:
      return {5 * star_inner * std::sin(kPi / 5),
              10 * std::sqrt(1 + star_inner * star_inner - 2 * star_inner * std::cos(kPi / 5))};
  }
  return {1, 1};
}

// OpenCV's LINE_AA fill lays an antialiased outline over the polygon's edge,
// which grows it by about 0.6 px all round: noticeable on small stars. Shrink
// the shape so filled area + that rim is the geometric area.
constexpr double kAaGrowth = 0.6;

double compensated_radius(Shape shape, double radius, double star_inner) {
  const auto [a, p] = unit_area_perimeter(shape, star_inner);
  // a (s r)^2 + p (s r) d = a r^2, for the scale s.
  const double d = kAaGrowth, s = (-p * d + std::sqrt(p * p * d * d + 4 * a * a * radius * radius)) / (2 * a * radius);
  return s * radius;
}

// One shape inside the circle (x, y, radius), in canvas pixels. Angle 0 is
// upright: a triangle's and a star's top point straight up.
void draw_shape(cv::Mat& canvas, Shape shape, double x, double y, double radius, double angle, double star_inner,
                const Rgb& color) {
  radius = compensated_radius(shape, radius, star_inner);
  std::vector<cv::Point> pts;
  auto polygon = [&](int corners, double start, const double* radii, int nradii) {
    for (int i = 0; i < corners * nradii; ++i) {
      const double a = start + angle + 2 * kPi * i / (corners * nradii);
      const double rr = radius * radii[i % nradii];
      pts.push_back(fixed(x + rr * std::cos(a), y + rr * std::sin(a)));
    }
  };
  const double one = 1.0;
  switch (shape) {
    case Shape::Circle:
      cv::circle(canvas, fixed(x, y), static_cast<int>(std::lround(0.9 * radius * kOne)), scalar(color), cv::FILLED,
                 cv::LINE_AA, kShift);
      return;
    case Shape::Square: polygon(4, -kPi / 4, &one, 1); break;
    case Shape::Triangle: polygon(3, -kPi / 2, &one, 1); break;
    case Shape::Star: {
      const double radii[2] = {1.0, star_inner};
      polygon(5, -kPi / 2, radii, 2);
      break;
    }
  }
  const cv::Point* p = pts.data();
  const int n = static_cast<int>(pts.size());
  cv::fillPoly(canvas, &p, &n, 1, scalar(color), cv::LINE_AA, kShift);
}

void fill_background(cv::Mat& canvas, const Rgb& color, bool gradient, Rng& r) {
  canvas.setTo(scalar(color));
  if (!gradient) return;
  // A linear ramp of up to +-20 levels along a random direction.
  const double a = r.uniform(0, 2 * kPi), dx = std::cos(a), dy = std::sin(a);
  const double amplitude = r.uniform(8, 20);
  const double cx = canvas.cols / 2.0, cy = canvas.rows / 2.0, half = std::hypot(cx, cy);
  for (int y = 0; y < canvas.rows; ++y) {
    auto* row = canvas.ptr<uint8_t>(y);
    for (int x = 0; x < canvas.cols; ++x) {
      const double t = ((x - cx) * dx + (y - cy) * dy) / half;
      for (int c = 0; c < 3; ++c)
        row[3 * x + c] = static_cast<uint8_t>(std::clamp(std::lround(color[c] + amplitude * t), 0L, 255L));
    }
  }
}

void add_noise(cv::Mat& canvas, double sigma, Rng& r) {
  for (int y = 0; y < canvas.rows; ++y) {
    auto* row = canvas.ptr<uint8_t>(y);
    for (int i = 0; i < canvas.cols * 3; ++i)
      row[i] = static_cast<uint8_t>(std::clamp(std::lround(row[i] + sigma * r.normal()), 0L, 255L));
  }
}

// Object centers: inside the centered square of the canvas with the margin, in
// the region when one is asked for, and apart from each other. The square,
// because every consumer (upstream's processor, `ruclip`, the element)
// center-crops a frame to its shorter side: an object outside it is never seen.
std::vector<Object> place(const StyleParams& p, int width, int height, const std::vector<double>& radii,
                          Position position, Rng& r) {
  const double unit = std::min(width, height), margin = p.margin * unit, gap = 0.04 * unit;
  const double x0 = (width - unit) / 2, y0 = (height - unit) / 2;
  std::vector<double> rad = radii;
  for (;;) {
    for (int attempt = 0; attempt < 200; ++attempt) {
      std::vector<Object> out;
      bool ok = true;
      for (double radius : rad) {
        const double lo_x = x0 + radius + margin, hi_x = x0 + unit - radius - margin;
        const double lo_y = y0 + radius + margin, hi_y = y0 + unit - radius - margin;
        double x, y;
        if (hi_x < lo_x || hi_y < lo_y) {
          ok = false;
          break;
        }
        if (position != Position::Unspecified) {
          const Region& g = p.regions[static_cast<int>(position)];
          x = std::clamp(x0 + r.uniform(g.x.lo, g.x.hi) * unit, lo_x, hi_x);
          y = std::clamp(y0 + r.uniform(g.y.lo, g.y.hi) * unit, lo_y, hi_y);
        } else {
          x = r.uniform(lo_x, hi_x);
          y = r.uniform(lo_y, hi_y);
        }
        for (const Object& o : out)
          if (std::hypot(o.x - x, o.y - y) < o.radius + radius + gap) ok = false;
        if (!ok) break;
        out.push_back({static_cast<float>(x), static_cast<float>(y), static_cast<float>(radius)});
      }
      if (ok) return out;
    }
    for (double& radius : rad) radius *= 0.9;  // crowded: shrink and try again
  }
}

Image to_image(const cv::Mat& rgb) {
  Image img;
  img.format = PixelFormat::RGB;
  img.width = rgb.cols;
  img.height = rgb.rows;
  img.pixels.resize(static_cast<size_t>(rgb.cols) * rgb.rows * 3);
  for (int y = 0; y < rgb.rows; ++y)
    std::memcpy(img.pixels.data() + static_cast<size_t>(y) * rgb.cols * 3, rgb.ptr<uint8_t>(y),
                static_cast<size_t>(rgb.cols) * 3);
  return img;
}

std::string pad(int i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%06d", i);
  return buf;
}

}  // namespace

// ---- Public API ----------------------------------------------------------------------

std::set<Pair> default_holdout() {
  return {{Color::Blue, Shape::Triangle}, {Color::Yellow, Shape::Star},   {Color::Red, Shape::Square},
          {Color::Green, Shape::Circle},  {Color::Purple, Shape::Square}, {Color::Orange, Shape::Star}};
}

std::string describe(const Phrase& ph) {
  if (ph.count < 1 || ph.count > 4)
    throw Error("synthetic caption: count " + std::to_string(ph.count) + " is outside 1..4");
  const Noun& noun = ph.shape ? kShapeWords[static_cast<int>(*ph.shape)] : kFigure;
  std::string s;
  auto word = [&](const std::string& w) {
    if (w.empty()) return;
    if (!s.empty()) s += ' ';
    s += w;
  };
  word(numeral(ph.count, noun.feminine));
  if (ph.size == Size::Small) word(agree(kSmall, noun, ph.count));
  if (ph.size == Size::Large) word(agree(kLarge, noun, ph.count));
  if (ph.color) word(agree(kColorWords[static_cast<int>(*ph.color)], noun, ph.count));
  word(ph.count == 1 ? noun.nom : noun.gen_sg);
  word(kPositionWords[static_cast<int>(ph.position)]);
  if (ph.background) word(std::string("на ") + kColorWords[static_cast<int>(*ph.background)].m_prep + " фоне");
  return s;
}

std::string label(Color color, Shape shape) {
  Phrase ph;
  ph.color = color;
  ph.shape = shape;
  return describe(ph);
}

std::string solid_label(Color color) { return fill(kSolidTemplates[0], kColorWords[static_cast<int>(color)].m); }

std::vector<std::string> all_labels() {
  std::vector<std::string> out;
  for (int c = 0; c < kShapeColorCount; ++c)
    for (int s = 0; s < kShapeCount; ++s) out.push_back(label(static_cast<Color>(c), static_cast<Shape>(s)));
  return out;
}

std::vector<std::string> all_solid_labels() {
  std::vector<std::string> out;
  for (int c = 0; c < kShapeColorCount; ++c) out.push_back(solid_label(static_cast<Color>(c)));
  return out;
}

std::array<uint8_t, 3> canonical_rgb(Color color) { return kCanonical[static_cast<int>(color)]; }

Color nearest_color(uint8_t r, uint8_t g, uint8_t b) {
  const Hsv h = to_hsv(r, g, b);
  if (h.v < 0.3) return Color::Black;
  if (h.s < 0.3) return h.v >= 0.6 ? Color::White : Color::Black;
  Color best = Color::Red;
  double best_d = 1e9;
  for (int c = 0; c < kShapeColorCount; ++c) {
    if (!chromatic(static_cast<Color>(c))) continue;
    const Rgb& k = kCanonical[c];
    const double d = hue_distance(h.h, to_hsv(k[0], k[1], k[2]).h);
    if (d < best_d) best_d = d, best = static_cast<Color>(c);
  }
  return best;
}

Generator::Generator(Options options, uint64_t seed) : options_(std::move(options)), rng_(seed) {
  const StyleParams& p = params(options_.style);
  if (options_.width == 0) options_.width = p.width;
  if (options_.height == 0) options_.height = p.height;
  if (options_.width < 8 || options_.width > 4096 || options_.height < 8 || options_.height > 4096)
    throw Error("synthetic images: size " + std::to_string(options_.width) + "x" + std::to_string(options_.height) +
                " is outside 8..4096");
  if (options_.jpeg_quality < 0 || options_.jpeg_quality > 100)
    throw Error("synthetic images: JPEG quality " + std::to_string(options_.jpeg_quality) +
                " is outside 0..100 (0: no JPEG)");
  for (int c = 0; c < kShapeColorCount; ++c)
    for (int s = 0; s < kShapeCount; ++s) {
      const Pair pair{static_cast<Color>(c), static_cast<Shape>(s)};
      const bool held = options_.holdout.count(pair) > 0;
      if (options_.pairs == Pairs::All || (options_.pairs == Pairs::Held) == held) pairs_.push_back(pair);
    }
  if (pairs_.empty())
    throw Error(options_.pairs == Pairs::Held ? "synthetic images: the hold-out set is empty, nothing to generate"
                                              : "synthetic images: every color-shape pair is held out");
}

Sample Generator::next() {
  const StyleParams& p = params(options_.style);
  Rng r(rng_);
  const int k = p.supersample, width = options_.width, height = options_.height;
  const double unit = std::min(width, height);
  cv::Mat canvas(height * k, width * k, CV_8UC3);
  Sample s;

  if (options_.include_solid && options_.pairs != Pairs::Held && r.chance(p.p_solid)) {
    s.solid = true;
    s.color = s.background = static_cast<Color>(r.index(kShapeColorCount));
    canvas.setTo(scalar(jitter(s.color, p, r)));
    s.label = solid_label(s.color);
    const auto n = sizeof(kSolidTemplates) / sizeof(kSolidTemplates[0]);
    s.caption = fill(kSolidTemplates[r.index(n)], kColorWords[static_cast<int>(s.color)].m);
  } else {
    const Pair pair = pairs_[r.index(pairs_.size())];
    s.color = pair.first;
    s.shape = pair.second;
    s.label = label(s.color, s.shape);
    const bool ball = s.shape == Shape::Circle && r.chance(p.p_ball);

    // What is drawn.
    Size size = Size::Unspecified;  // Unspecified here: medium
    Position position = Position::Unspecified;
    std::vector<double> radii;
    if (ball) {
      // videotestsrc pattern=ball: one circle on a flat background of another color.
      s.count = 1;
      radii.push_back(r.uniform(p.ball.lo, p.ball.hi) * unit / 0.9);  // the disc itself has radius ball*unit
      s.background = pick_background(s.color, {{0.15, 0.35, 0.10, 0.40}}, r);
    } else {
      s.count = static_cast<int>(r.weighted(p.count_weights)) + 1;
      size_t size_class = s.count == 1 ? r.weighted(p.single_sizes) : r.weighted(std::array<double, 2>{0.6, 0.4});
      const Range& range = size_class == 0 ? p.small : size_class == 1 ? p.medium : p.large;
      size = size_class == 0 ? Size::Small : size_class == 2 ? Size::Large : Size::Unspecified;
      for (int i = 0; i < s.count; ++i) radii.push_back(r.uniform(range.lo, range.hi) * unit);
      if (s.count == 1) {
        if (size == Size::Large)
          position = r.chance(0.5) ? Position::Center : Position::Unspecified;
        else
          position = static_cast<Position>(r.weighted(std::array<double, 6>{0.2, 0.16, 0.16, 0.16, 0.16, 0.16}));
      }
      s.background = pick_background(s.color, p.background_tone, r);
    }
    s.objects = place(p, width, height, radii, position, r);

    Rgb fg = jitter(s.color, p, r), bg = jitter(s.background, p, r);
    // Jitter can bring two tones close (purple and gray): draw again, at worst use the canonical ones.
    for (int tries = 0; rgb_distance(fg, bg) < kMinContrast && tries < 50; ++tries) {
      fg = jitter(s.color, p, r);
      bg = jitter(s.background, p, r);
    }
    if (rgb_distance(fg, bg) < kMinContrast) fg = canonical_rgb(s.color), bg = canonical_rgb(s.background);
    fill_background(canvas, bg, !ball && r.chance(p.p_gradient), r);
    for (const Object& o : s.objects) {
      const double angle = p.rotation >= kPi ? r.uniform(0, 2 * kPi) : r.uniform(-p.rotation, p.rotation);
      const double inner = r.uniform(p.star_inner_lo, p.star_inner_hi);
      draw_shape(canvas, s.shape, (o.x + 0.5) * k - 0.5, (o.y + 0.5) * k - 0.5, o.radius * k, angle, inner, fg);
    }
    if (!ball && r.chance(p.p_noise)) add_noise(canvas, r.uniform(2, 5), r);

    // What is said.
    Phrase ph;
    ph.count = s.count;
    const double naming = p.always_both_words || ball ? 0 : r.uniform();
    if (naming < 0.9) ph.color = s.color;
    if (naming < 0.8 || naming >= 0.9) ph.shape = s.shape;
    if (size != Size::Unspecified && r.chance(p.p_size_word)) ph.size = size;
    if (position != Position::Unspecified && r.chance(p.p_position_word)) ph.position = position;
    if (ball || r.chance(p.p_background_word)) ph.background = s.background;
    s.caption = describe(ph);
  }

  if (k > 1) {
    cv::Mat small;
    cv::resize(canvas, small, cv::Size(width, height), 0, 0, cv::INTER_AREA);
    canvas = small;
  }
  if (options_.jpeg_quality > 0) {
    cv::Mat bgr;
    cv::cvtColor(canvas, bgr, cv::COLOR_RGB2BGR);
    if (!cv::imencode(".jpg", bgr, s.jpeg, {cv::IMWRITE_JPEG_QUALITY, options_.jpeg_quality}))
      throw Error("synthetic images: JPEG encoding failed");
    cv::cvtColor(cv::imdecode(s.jpeg, cv::IMREAD_COLOR), canvas, cv::COLOR_BGR2RGB);
  }
  s.image = to_image(canvas);
  return s;
}

std::string csv_field(const std::string& text) {
  if (text.find_first_of(",\"\r\n") == std::string::npos) return text;
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

DatasetSummary write_dataset(const std::string& dir, const Options& options, int count, uint64_t seed) {
  namespace fs = std::filesystem;
  if (count < 0) throw Error("synthetic dataset: count " + std::to_string(count) + " is negative");
  Generator gen(options, seed);  // options checked before anything is written
  const fs::path root(dir), images = root / "images";
  std::error_code ec;
  fs::create_directories(images, ec);
  if (ec) throw Error("cannot create directory '" + images.string() + "': " + ec.message());

  DatasetSummary summary;
  summary.dir = dir;
  summary.images_dir = images.string();
  summary.captions_csv = (root / "captions.csv").string();
  summary.labels_csv = (root / "labels.csv").string();
  summary.extension = options.jpeg_quality > 0 ? "jpg" : "png";

  auto open = [](const std::string& path) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw Error("cannot write '" + path + "': " + std::strerror(errno));
    return out;
  };
  std::ofstream captions = open(summary.captions_csv), labels = open(summary.labels_csv);
  captions << "file,caption\n";
  labels << "file,label\n";

  for (int i = 0; i < count; ++i) {
    const Sample s = gen.next();
    const std::string name = "images/" + pad(i) + "." + summary.extension;
    const std::string path = (root / name).string();
    if (!s.jpeg.empty()) {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out.write(reinterpret_cast<const char*>(s.jpeg.data()), static_cast<std::streamsize>(s.jpeg.size()));
      if (!out) throw Error("cannot write '" + path + "': " + std::strerror(errno));
    } else {
      cv::Mat rgb(s.image.height, s.image.width, CV_8UC3, const_cast<uint8_t*>(s.image.pixels.data())), bgr;
      cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
      bool ok = false;
      try {
        ok = cv::imwrite(path, bgr);
      } catch (const cv::Exception& e) {
        throw Error("cannot write '" + path + "': " + e.what());
      }
      if (!ok) throw Error("cannot write '" + path + "'");
    }
    captions << csv_field(name) << ',' << csv_field(s.caption) << '\n';
    labels << csv_field(name) << ',' << csv_field(s.label) << '\n';
  }
  captions.close();
  labels.close();
  if (!captions) throw Error("cannot write '" + summary.captions_csv + "'");
  if (!labels) throw Error("cannot write '" + summary.labels_csv + "'");
  summary.count = count;
  return summary;
}

}  // namespace ruclip::synth

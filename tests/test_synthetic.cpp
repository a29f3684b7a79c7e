// The synthetic data generator (ruclip/synthetic.h): Russian grammar of the
// captions, labels, determinism, hold-out pairs, what the pixels show, the
// two renderers, JPEG, and the files write_dataset / `ruclip synth` produce.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "ruclip/error.h"
#include "ruclip/tools/image_files.h"
#include "ruclip/tools/synthetic.h"
#include "test_util.h"

namespace synth = ruclip::synth;
using synth::Color;
using synth::Phrase;
using synth::Position;
using synth::Shape;
using synth::Size;

namespace fs = std::filesystem;

namespace {

using Rgb = std::array<int, 3>;

Rgb pixel(const ruclip::Image& img, int x, int y) {
  x = std::clamp(x, 0, img.width - 1);
  y = std::clamp(y, 0, img.height - 1);
  const uint8_t* p = img.pixels.data() + (static_cast<size_t>(y) * img.width + x) * 3;
  return {p[0], p[1], p[2]};
}

// Per-channel median of the 3x3 block around (x, y).
Rgb median3(const ruclip::Image& img, double fx, double fy) {
  const int x = static_cast<int>(std::lround(fx)), y = static_cast<int>(std::lround(fy));
  Rgb out{};
  for (int c = 0; c < 3; ++c) {
    std::vector<int> v;
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx) v.push_back(pixel(img, x + dx, y + dy)[c]);
    std::nth_element(v.begin(), v.begin() + 4, v.end());
    out[c] = v[4];
  }
  return out;
}

double distance(const Rgb& a, const Rgb& b) {
  double d = 0;
  for (int c = 0; c < 3; ++c) d += double(a[c] - b[c]) * (a[c] - b[c]);
  return std::sqrt(d);
}

int max_channel_diff(const Rgb& a, const std::array<uint8_t, 3>& b) {
  int d = 0;
  for (int c = 0; c < 3; ++c) d = std::max(d, std::abs(a[c] - b[c]));
  return d;
}

Color nearest(const Rgb& p) {
  return synth::nearest_color(static_cast<uint8_t>(p[0]), static_cast<uint8_t>(p[1]), static_cast<uint8_t>(p[2]));
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::vector<synth::Sample> generate(const synth::Options& options, uint64_t seed, int n) {
  synth::Generator gen(options, seed);
  std::vector<synth::Sample> out;
  for (int i = 0; i < n; ++i) out.push_back(gen.next());
  return out;
}

// RFC 4180 rows (quoted fields, doubled quotes), enough for what write_dataset writes.
std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  const std::string text = ruclip_test::read_file(path);
  std::vector<std::vector<std::string>> rows(1);
  std::string field;
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else field += c;
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      rows.back().push_back(field), field.clear();
    } else if (c == '\n') {
      rows.back().push_back(field), field.clear();
      rows.emplace_back();
    } else {
      field += c;
    }
  }
  if (rows.back().empty()) rows.pop_back();
  return rows;
}

// ---- Grammar ------------------------------------------------------------------------

struct Case {
  Phrase phrase;
  const char* expected;
};

Phrase P(std::optional<Color> color, std::optional<Shape> shape, int count = 1, Size size = Size::Unspecified,
         Position position = Position::Unspecified, std::optional<Color> background = std::nullopt) {
  Phrase p;
  p.color = color;
  p.shape = shape;
  p.count = count;
  p.size = size;
  p.position = position;
  p.background = background;
  return p;
}

TEST(SyntheticGrammar, ExactCaptions) {
  const Case cases[] = {
      // count 1, every shape, both genders
      {P(Color::Red, Shape::Circle), "красный круг"},
      {P(Color::Red, Shape::Star), "красная звезда"},
      {P(Color::Blue, Shape::Square), "синий квадрат"},
      {P(Color::Blue, Shape::Star), "синяя звезда"},
      {P(Color::Yellow, Shape::Triangle), "жёлтый треугольник"},
      {P(Color::Green, Shape::Star), "зелёная звезда"},
      {P(Color::Black, Shape::Triangle), "чёрный треугольник"},
      {P(Color::Orange, Shape::Square), "оранжевый квадрат"},
      // count 2: masculine -> genitive plural adjective + genitive singular noun
      {P(Color::Red, Shape::Circle, 2), "два красных круга"},
      {P(Color::Blue, Shape::Square, 2), "два синих квадрата"},
      {P(Color::White, Shape::Triangle, 2), "два белых треугольника"},
      // count 2: feminine -> nominative plural adjective + genitive singular noun
      {P(Color::Red, Shape::Star, 2), "две красные звезды"},
      {P(Color::Blue, Shape::Star, 2), "две синие звезды"},
      {P(Color::Black, Shape::Star, 2), "две чёрные звезды"},
      // count 3
      {P(Color::Yellow, Shape::Triangle, 3), "три жёлтых треугольника"},
      {P(Color::Blue, Shape::Circle, 3), "три синих круга"},
      {P(Color::Purple, Shape::Square, 3), "три фиолетовых квадрата"},
      {P(Color::Green, Shape::Star, 3), "три зелёные звезды"},
      {P(Color::Orange, Shape::Star, 4), "четыре оранжевые звезды"},
      // sizes agree with gender and number
      {P(Color::Green, Shape::Star, 1, Size::Small), "маленькая зелёная звезда"},
      {P(Color::Green, Shape::Circle, 1, Size::Small), "маленький зелёный круг"},
      {P(Color::Black, Shape::Square, 1, Size::Large, Position::Center), "большой чёрный квадрат в центре"},
      {P(Color::White, Shape::Star, 1, Size::Large), "большая белая звезда"},
      {P(Color::Red, Shape::Circle, 2, Size::Small), "два маленьких красных круга"},
      {P(Color::Blue, Shape::Star, 2, Size::Small), "две маленькие синие звезды"},
      {P(Color::Yellow, Shape::Triangle, 3, Size::Large), "три больших жёлтых треугольника"},
      {P(Color::Red, Shape::Star, 3, Size::Large), "три большие красные звезды"},
      // positions and backgrounds (prepositional masculine adjective)
      {P(Color::Blue, Shape::Square, 1, Size::Unspecified, Position::Left, Color::White),
       "синий квадрат слева на белом фоне"},
      {P(Color::Purple, Shape::Star, 1, Size::Unspecified, Position::Unspecified, Color::Gray),
       "фиолетовая звезда на сером фоне"},
      {P(Color::White, Shape::Circle, 1, Size::Unspecified, Position::Unspecified, Color::Black),
       "белый круг на чёрном фоне"},
      {P(Color::Red, Shape::Triangle, 1, Size::Small, Position::Right, Color::Blue),
       "маленький красный треугольник справа на синем фоне"},
      {P(Color::Orange, Shape::Circle, 1, Size::Unspecified, Position::Top, Color::Green),
       "оранжевый круг вверху на зелёном фоне"},
      {P(Color::Yellow, Shape::Star, 1, Size::Small, Position::Bottom, Color::Purple),
       "маленькая жёлтая звезда внизу на фиолетовом фоне"},
      {P(Color::Black, Shape::Square, 2, Size::Unspecified, Position::Unspecified, Color::Yellow),
       "два чёрных квадрата на жёлтом фоне"},
      {P(Color::White, Shape::Star, 3, Size::Unspecified, Position::Unspecified, Color::Red),
       "три белые звезды на красном фоне"},
      {P(Color::Green, Shape::Triangle, 1, Size::Unspecified, Position::Unspecified, Color::Orange),
       "зелёный треугольник на оранжевом фоне"},
      // color only ("фигура", feminine) and shape only
      {P(Color::Red, std::nullopt), "красная фигура"},
      {P(Color::Red, std::nullopt, 2), "две красные фигуры"},
      {P(Color::Blue, std::nullopt, 3, Size::Small, Position::Unspecified, Color::White),
       "три маленькие синие фигуры на белом фоне"},
      {P(std::nullopt, Shape::Circle), "круг"},
      {P(std::nullopt, Shape::Circle, 2), "два круга"},
      {P(std::nullopt, Shape::Star, 2), "две звезды"},
      {P(std::nullopt, Shape::Triangle, 3, Size::Large), "три больших треугольника"},
      {P(std::nullopt, Shape::Star, 1, Size::Small, Position::Center, Color::Black),
       "маленькая звезда в центре на чёрном фоне"},
  };
  for (const Case& c : cases) EXPECT_EQ(synth::describe(c.phrase), c.expected);
}

TEST(SyntheticGrammar, CountsOutsideOneToFourAreErrors) {
  EXPECT_THROW(synth::describe(P(Color::Red, Shape::Circle, 0)), ruclip::Error);
  EXPECT_THROW(synth::describe(P(Color::Red, Shape::Circle, 5)), ruclip::Error);
}

TEST(SyntheticLabels, AllThirtyTwoUniqueAndCorrect) {
  const auto labels = synth::all_labels();
  ASSERT_EQ(labels.size(), 32u);
  EXPECT_EQ(std::set<std::string>(labels.begin(), labels.end()).size(), 32u);
  const char* colors_m[] = {"красный", "оранжевый", "жёлтый", "зелёный", "синий", "фиолетовый", "белый", "чёрный"};
  const char* colors_f[] = {"красная", "оранжевая", "жёлтая", "зелёная", "синяя", "фиолетовая", "белая", "чёрная"};
  const char* shapes[] = {"круг", "квадрат", "треугольник", "звезда"};
  for (int c = 0; c < 8; ++c)
    for (int s = 0; s < 4; ++s) {
      const std::string expected = std::string(s == 3 ? colors_f[c] : colors_m[c]) + " " + shapes[s];
      EXPECT_EQ(synth::label(static_cast<Color>(c), static_cast<Shape>(s)), expected);
      EXPECT_EQ(labels[c * 4 + s], expected);
    }
  EXPECT_EQ(synth::solid_label(Color::Red), "красный фон");
  EXPECT_EQ(synth::solid_label(Color::Black), "чёрный фон");
  EXPECT_EQ(synth::solid_label(Color::Blue), "синий фон");
  const auto solids = synth::all_solid_labels();
  ASSERT_EQ(solids.size(), 8u);
  EXPECT_EQ(std::set<std::string>(solids.begin(), solids.end()).size(), 8u);
  EXPECT_EQ(solids[5], "фиолетовый фон");
}

TEST(SyntheticLabels, CanonicalColorsAreDistinctAndClassifyAsThemselves) {
  for (int a = 0; a < 8; ++a) {
    const auto ka = synth::canonical_rgb(static_cast<Color>(a));
    EXPECT_EQ(synth::nearest_color(ka[0], ka[1], ka[2]), static_cast<Color>(a)) << a;
    for (int b = a + 1; b < 8; ++b) {
      const auto kb = synth::canonical_rgb(static_cast<Color>(b));
      EXPECT_GT(distance({ka[0], ka[1], ka[2]}, {kb[0], kb[1], kb[2]}), 80) << a << " vs " << b;
    }
  }
  // What videotestsrc's foreground-color / background-color typically are.
  EXPECT_EQ(synth::nearest_color(255, 255, 255), Color::White);
  EXPECT_EQ(synth::nearest_color(0, 0, 0), Color::Black);
  EXPECT_EQ(synth::nearest_color(255, 0, 0), Color::Red);
  EXPECT_EQ(synth::nearest_color(0, 255, 0), Color::Green);
  EXPECT_EQ(synth::nearest_color(0, 0, 255), Color::Blue);
  EXPECT_EQ(synth::nearest_color(255, 255, 0), Color::Yellow);
}

// ---- Generation ------------------------------------------------------------------------

TEST(SyntheticGenerator, DeterministicGivenSeed) {
  for (synth::Style style : {synth::Style::Train, synth::Style::Eval}) {
    synth::Options options;
    options.style = style;
    const auto a = generate(options, 7, 200), b = generate(options, 7, 200), c = generate(options, 8, 200);
    int differing = 0;
    for (int i = 0; i < 200; ++i) {
      EXPECT_EQ(a[i].image.pixels, b[i].image.pixels) << i;
      EXPECT_EQ(a[i].caption, b[i].caption) << i;
      EXPECT_EQ(a[i].label, b[i].label) << i;
      if (a[i].image.pixels != c[i].image.pixels || a[i].caption != c[i].caption) ++differing;
    }
    EXPECT_GT(differing, 190);
  }
}

// The forms in which a pair can show up in a caption: "синий треугольник",
// "синих треугольника", "жёлтые звезды", ...
std::vector<std::string> pair_forms(const synth::Pair& pair) {
  std::vector<std::string> forms;
  for (int count = 1; count <= 3; ++count) {
    std::string s = synth::describe(P(pair.first, pair.second, count));
    if (count > 1) s = s.substr(s.find(' ') + 1);  // drop the numeral
    forms.push_back(s);
  }
  return forms;
}

TEST(SyntheticGenerator, HoldoutNeverGeneratedForSeenPairs) {
  const auto holdout = synth::default_holdout();
  ASSERT_EQ(holdout.size(), 6u);
  // Every color and every shape still appears with some other partner.
  for (int c = 0; c < 8; ++c) {
    int seen = 0;
    for (int s = 0; s < 4; ++s) seen += !holdout.count({static_cast<Color>(c), static_cast<Shape>(s)});
    EXPECT_GE(seen, 2) << c;
  }
  for (int s = 0; s < 4; ++s) {
    int seen = 0;
    for (int c = 0; c < 8; ++c) seen += !holdout.count({static_cast<Color>(c), static_cast<Shape>(s)});
    EXPECT_GE(seen, 6) << s;
  }
  for (synth::Style style : {synth::Style::Train, synth::Style::Eval}) {
    synth::Options options;
    options.style = style;
    synth::Generator gen(options, 1234);
    std::set<std::string> labels_seen;
    for (int i = 0; i < 5000; ++i) {
      const auto s = gen.next();
      if (!s.solid) {
        EXPECT_EQ(holdout.count({s.color, s.shape}), 0u) << s.caption;
        labels_seen.insert(s.label);
      }
      for (const auto& pair : holdout)
        for (const auto& form : pair_forms(pair)) EXPECT_FALSE(contains(s.caption, form)) << s.caption;
    }
    EXPECT_EQ(labels_seen.size(), 32u - holdout.size());  // and every seen pair does come up
  }
}

TEST(SyntheticGenerator, HeldAndAllPairs) {
  const auto holdout = synth::default_holdout();
  synth::Options options;
  options.pairs = synth::Pairs::Held;
  std::set<synth::Pair> got;
  for (const auto& s : generate(options, 5, 1000)) {
    ASSERT_FALSE(s.solid);
    EXPECT_EQ(holdout.count({s.color, s.shape}), 1u) << s.caption;
    got.insert({s.color, s.shape});
  }
  EXPECT_EQ(got, holdout);

  options.pairs = synth::Pairs::All;
  got.clear();
  for (const auto& s : generate(options, 5, 3000))
    if (!s.solid) got.insert({s.color, s.shape});
  EXPECT_EQ(got.size(), 32u);

  // A custom hold-out set.
  options.pairs = synth::Pairs::Held;
  options.holdout = {{Color::White, Shape::Circle}};
  for (const auto& s : generate(options, 5, 100)) {
    EXPECT_EQ(s.color, Color::White);
    EXPECT_EQ(s.shape, Shape::Circle);
    EXPECT_EQ(s.label, "белый круг");
  }
}

TEST(SyntheticGenerator, CaptionsVaryAndStayConsistentWithTheSample) {
  synth::Options options;
  synth::Generator gen(options, 99);
  std::map<std::string, int> seen;
  const char* const kSolidCaptions[] = {"фон", "экран", "сплошной", "цвет", "однотонный", "весь экран"};
  for (int i = 0; i < 4000; ++i) {
    const auto s = gen.next();
    const std::string color_m = synth::describe(P(s.color, Shape::Circle));
    const std::string color_word_m = color_m.substr(0, color_m.find(' '));
    if (s.solid) {
      ++seen["solid"];
      EXPECT_EQ(s.count, 0);
      EXPECT_TRUE(s.objects.empty());
      EXPECT_EQ(s.label, synth::solid_label(s.color));
      EXPECT_TRUE(contains(s.caption, color_word_m)) << s.caption;
      for (const char* w : kSolidCaptions)
        if (contains(s.caption, w)) ++seen[std::string("solid:") + w];
      continue;
    }
    EXPECT_EQ(s.label, synth::label(s.color, s.shape));
    EXPECT_EQ(static_cast<int>(s.objects.size()), s.count);
    ASSERT_GE(s.count, 1);
    ASSERT_LE(s.count, 3);
    ++seen["count" + std::to_string(s.count)];
    // The caption is one of the phrasings of this very sample: find it.
    bool found = false;
    const std::optional<Color> colors[] = {s.color, std::nullopt};
    const std::optional<Shape> shapes[] = {s.shape, std::nullopt};
    const std::optional<Color> backgrounds[] = {std::nullopt, s.background};
    for (auto c : colors)
      for (auto sh : shapes)
        for (int size = 0; size < 3; ++size)
          for (int pos = 0; pos < 6; ++pos)
            for (auto bg : backgrounds) {
              if (!c && !sh) continue;
              if (s.caption != synth::describe(P(c, sh, s.count, static_cast<Size>(size), static_cast<Position>(pos), bg)))
                continue;
              found = true;
              if (!c) ++seen["shape only"];
              if (!sh) ++seen["color only"];
              if (size) ++seen["size" + std::to_string(size)];
              if (pos) ++seen["position" + std::to_string(pos)];
              if (bg) ++seen["background"];
              if (pos) { EXPECT_EQ(s.count, 1) << s.caption; }
            }
    EXPECT_TRUE(found) << s.caption;
  }
  for (const char* key : {"solid", "count1", "count2", "count3", "shape only", "color only", "size1", "size2",
                          "position1", "position2", "position3", "position4", "position5", "background"})
    EXPECT_GT(seen[key], 5) << key;
  for (const char* w : kSolidCaptions) EXPECT_GT(seen[std::string("solid:") + w], 5) << w;
  EXPECT_GT(seen["color only"] + seen["shape only"], 0);
  EXPECT_LT(seen["color only"] + seen["shape only"], seen["count1"] / 2);  // most captions name both
}

// ---- Pixels ---------------------------------------------------------------------------

void check_pixels(const synth::Options& options, int tolerance) {
  synth::Generator gen(options, 42);
  const int width = gen.options().width, height = gen.options().height;
  double total_error = 0;
  int objects = 0;
  for (int i = 0; i < 3000; ++i) {
    const auto s = gen.next();
    ASSERT_EQ(s.image.format, ruclip::PixelFormat::RGB);
    ASSERT_EQ(s.image.width, width);
    ASSERT_EQ(s.image.height, height);
    ASSERT_EQ(s.image.pixels.size(), static_cast<size_t>(width) * height * 3);
    if (s.solid) {
      const Rgb first = pixel(s.image, 0, 0);
      EXPECT_EQ(nearest(first), s.color) << s.caption;
      EXPECT_LE(max_channel_diff(first, synth::canonical_rgb(s.color)), tolerance) << s.caption;
      if (options.jpeg_quality == 0) {
        for (int y = 0; y < height; ++y)
          for (int x = 0; x < width; ++x) ASSERT_EQ(pixel(s.image, x, y), first) << s.caption;
      }
      continue;
    }
    ASSERT_NE(s.background, s.color) << s.caption;
    // A corner is never inside an object's circle: it is background.
    const Rgb corner = median3(s.image, 1, 1);
    if (s.background != Color::Gray && options.jpeg_quality == 0) { EXPECT_EQ(nearest(corner), s.background) << s.caption; }
    for (const auto& o : s.objects) {
      EXPECT_GE(o.x - o.radius, 0);
      EXPECT_GE(o.y - o.radius, 0);
      EXPECT_LE(o.x + o.radius, width);
      EXPECT_LE(o.y + o.radius, height);
      const Rgb center = median3(s.image, o.x, o.y);
      EXPECT_EQ(nearest(center), s.color) << s.caption << " center " << center[0] << "," << center[1] << ","
                                          << center[2];
      EXPECT_LE(max_channel_diff(center, synth::canonical_rgb(s.color)), tolerance) << s.caption;
      EXPECT_GE(distance(center, corner), 50) << s.caption;  // the object stands out
      const auto k = synth::canonical_rgb(s.color);
      total_error += distance(center, {k[0], k[1], k[2]});
      ++objects;
    }
    for (size_t a = 0; a < s.objects.size(); ++a)
      for (size_t b = a + 1; b < s.objects.size(); ++b)
        EXPECT_GE(std::hypot(s.objects[a].x - s.objects[b].x, s.objects[a].y - s.objects[b].y),
                  s.objects[a].radius + s.objects[b].radius);
  }
  EXPECT_LT(total_error / objects, 40);  // on average close to the canonical color
}

TEST(SyntheticPixels, TrainObjectsShowTheirColor) { check_pixels(synth::Options{}, 75); }

TEST(SyntheticPixels, EvalObjectsShowTheirColor) {
  synth::Options options;
  options.style = synth::Style::Eval;
  check_pixels(options, 60);
}

TEST(SyntheticPixels, JpegObjectsKeepTheirColor) {
  synth::Options options;
  options.style = synth::Style::Eval;
  options.jpeg_quality = 70;
  check_pixels(options, 80);
}

TEST(SyntheticPixels, WhiteAndBlackNeverOnTheirOwnBackground) {
  synth::Options options;
  options.include_solid = false;
  synth::Generator gen(options, 3);
  int white = 0, black = 0;
  for (int i = 0; i < 3000; ++i) {
    const auto s = gen.next();
    if (s.color != Color::White && s.color != Color::Black) continue;
    (s.color == Color::White ? white : black)++;
    EXPECT_NE(s.background, s.color);
    const Rgb corner = median3(s.image, 1, 1), center = median3(s.image, s.objects[0].x, s.objects[0].y);
    EXPECT_GE(distance(center, corner), 60) << s.caption;
  }
  EXPECT_GT(white, 100);
  EXPECT_GT(black, 100);
}

// Shapes have the area their geometry says: circle pi (0.9 r)^2, square 2 r^2,
// equilateral triangle 1.299 r^2, five-point star with inner radius 0.382 r: 1.123 r^2.
TEST(SyntheticPixels, ShapeAreasMatchGeometry) {
  synth::Options options;
  options.style = synth::Style::Eval;  // flat backgrounds, no noise, fixed star proportions
  options.width = 160;
  options.height = 120;
  synth::Generator gen(options, 11);
  const double factor[] = {3.14159265 * 0.81, 2.0, 1.29904, 5 * 0.382 * std::sin(3.14159265 / 5)};
  int checked[4] = {0, 0, 0, 0};
  for (int i = 0; i < 600; ++i) {
    const auto s = gen.next();
    if (s.solid) continue;
    const Rgb fg = median3(s.image, s.objects[0].x, s.objects[0].y), bg = median3(s.image, 1, 1);
    // Pixels closer to the object's color than to the background's, antialiased edges split half-way.
    double covered = 0, expected = 0;
    int partial = 0;
    for (int y = 0; y < s.image.height; ++y)
      for (int x = 0; x < s.image.width; ++x) {
        const Rgb p = pixel(s.image, x, y);
        const double to_fg = distance(p, fg), to_bg = distance(p, bg);
        covered += std::clamp(to_bg / (to_fg + to_bg + 1e-9), 0.0, 1.0);
        if (to_fg > 25 && to_bg > 25) ++partial;
      }
    for (const auto& o : s.objects) expected += factor[static_cast<int>(s.shape)] * o.radius * o.radius;
    EXPECT_NEAR(covered / expected, 1.0, 0.08) << s.caption;
    EXPECT_GT(partial, 0) << "no antialiased edge pixels: " << s.caption;
    ++checked[static_cast<int>(s.shape)];
  }
  for (int n : checked) EXPECT_GT(n, 50);
}

// ---- Styles, sizes, JPEG -----------------------------------------------------------------

TEST(SyntheticStyles, EvalIsAnotherRenderer) {
  synth::Options train, eval;
  eval.style = synth::Style::Eval;
  const auto a = generate(train, 1, 300), b = generate(eval, 1, 300);
  EXPECT_EQ(a[0].image.width, 64);
  EXPECT_EQ(a[0].image.height, 64);
  EXPECT_EQ(b[0].image.width, 96);
  EXPECT_EQ(b[0].image.height, 72);
  for (const auto& s : b) {
    EXPECT_FALSE(contains(s.caption, "фигура")) << s.caption;  // eval always names color and shape
    if (!s.solid && s.count == 1) { EXPECT_TRUE(contains(s.caption, s.label)) << s.caption; }
  }
  eval.width = 160;
  eval.height = 120;
  train.width = 160;
  train.height = 120;
  const auto c = generate(eval, 1, 50), d = generate(train, 1, 50);
  int differing = 0;
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(c[i].image.width, 160);
    EXPECT_EQ(c[i].image.height, 120);
    if (c[i].image.pixels != d[i].image.pixels) ++differing;
  }
  EXPECT_GT(differing, 45);

  // Train draws noise or gradients on some backgrounds; Eval never does.
  auto flat_background = [](const synth::Sample& s) {
    const Rgb corner = pixel(s.image, 0, 0);
    return pixel(s.image, s.image.width - 1, 0) == corner && pixel(s.image, 0, s.image.height - 1) == corner &&
           pixel(s.image, s.image.width - 1, s.image.height - 1) == corner;
  };
  int train_textured = 0;
  for (const auto& s : a) train_textured += !s.solid && !flat_background(s);
  for (const auto& s : b) EXPECT_TRUE(flat_background(s)) << s.caption;
  EXPECT_GT(train_textured, 30);
}

TEST(SyntheticStyles, JpegDiffersSlightlyAndKeepsTheBytes) {
  synth::Options png, jpg;
  png.style = jpg.style = synth::Style::Eval;
  jpg.jpeg_quality = 75;
  const auto a = generate(png, 21, 100), b = generate(jpg, 21, 100);
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(a[i].caption, b[i].caption);  // same scene
    EXPECT_TRUE(a[i].jpeg.empty());
    ASSERT_FALSE(b[i].jpeg.empty());
    ASSERT_EQ(a[i].image.pixels.size(), b[i].image.pixels.size());
    double diff = 0;
    for (size_t j = 0; j < a[i].image.pixels.size(); ++j) diff += std::abs(a[i].image.pixels[j] - b[i].image.pixels[j]);
    diff /= static_cast<double>(a[i].image.pixels.size());
    if (!a[i].solid) { EXPECT_GT(diff, 0.0) << a[i].caption; }
    EXPECT_LT(diff, 6.0) << a[i].caption;
  }
}

TEST(SyntheticStyles, BadOptionsAreErrors) {
  synth::Options o;
  o.width = 4;
  EXPECT_THROW(synth::Generator(o, 0), ruclip::Error);
  o = {};
  o.height = 5000;
  EXPECT_THROW(synth::Generator(o, 0), ruclip::Error);
  o = {};
  o.jpeg_quality = 101;
  EXPECT_THROW(synth::Generator(o, 0), ruclip::Error);
  o = {};
  o.pairs = synth::Pairs::Held;
  o.holdout.clear();
  EXPECT_THROW(synth::Generator(o, 0), ruclip::Error);
  o = {};
  for (int c = 0; c < 8; ++c)
    for (int s = 0; s < 4; ++s) o.holdout.insert({static_cast<Color>(c), static_cast<Shape>(s)});
  EXPECT_THROW(synth::Generator(o, 0), ruclip::Error);
}

TEST(SyntheticStyles, NonSquareAndTinyCanvases) {
  for (auto [w, h] : {std::pair{160, 120}, std::pair{48, 96}, std::pair{16, 16}, std::pair{8, 8}}) {
    for (synth::Style style : {synth::Style::Train, synth::Style::Eval}) {
      synth::Options o;
      o.style = style;
      o.width = w;
      o.height = h;
      for (const auto& s : generate(o, 2, 100)) {
        ASSERT_EQ(s.image.width, w);
        ASSERT_EQ(s.image.height, h);
        for (const auto& obj : s.objects) {
          EXPECT_GT(obj.radius, 0);
          EXPECT_GE(obj.x - obj.radius, 0);
          EXPECT_LE(obj.x + obj.radius, w);
        }
      }
    }
  }
}

// ---- Files ---------------------------------------------------------------------------

TEST(SyntheticFiles, CsvQuoting) {
  EXPECT_EQ(synth::csv_field("красный круг"), "красный круг");
  EXPECT_EQ(synth::csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(synth::csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(synth::csv_field("two\nlines"), "\"two\nlines\"");
}

void check_dataset(const synth::Options& options, const std::string& ext) {
  const std::string dir = ruclip_test::make_temp_dir() + "/data set, \"quoted\"";
  const auto summary = synth::write_dataset(dir, options, 40, 77);
  EXPECT_EQ(summary.count, 40);
  EXPECT_EQ(summary.extension, ext);
  EXPECT_EQ(summary.captions_csv, dir + "/captions.csv");
  EXPECT_EQ(summary.labels_csv, dir + "/labels.csv");
  const auto expected = generate(options, 77, 40);
  const auto captions = read_csv(summary.captions_csv), labels = read_csv(summary.labels_csv);
  ASSERT_EQ(captions.size(), 41u);
  ASSERT_EQ(labels.size(), 41u);
  EXPECT_EQ(captions[0], (std::vector<std::string>{"file", "caption"}));
  EXPECT_EQ(labels[0], (std::vector<std::string>{"file", "label"}));
  for (int i = 0; i < 40; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "images/%06d.%s", i, ext.c_str());
    ASSERT_EQ(captions[i + 1].size(), 2u);
    ASSERT_EQ(labels[i + 1].size(), 2u);
    EXPECT_EQ(captions[i + 1][0], name);
    EXPECT_EQ(labels[i + 1][0], name);
    EXPECT_EQ(captions[i + 1][1], expected[i].caption);
    EXPECT_EQ(labels[i + 1][1], expected[i].label);
    const ruclip::Image img = ruclip::load_image(dir + "/" + name);
    EXPECT_EQ(img.format, ruclip::PixelFormat::RGB);
    EXPECT_EQ(img.pixels, expected[i].image.pixels) << name;  // PNG lossless; JPEG: the very bytes
  }
  EXPECT_EQ(std::distance(fs::directory_iterator(summary.images_dir), fs::directory_iterator{}), 40);
  fs::remove_all(fs::path(dir).parent_path());
}

TEST(SyntheticFiles, WriteDatasetPng) { check_dataset(synth::Options{}, "png"); }

TEST(SyntheticFiles, WriteDatasetJpeg) {
  synth::Options o;
  o.style = synth::Style::Eval;
  o.jpeg_quality = 80;
  o.pairs = synth::Pairs::Held;
  check_dataset(o, "jpg");
}

TEST(SyntheticFiles, UnwritableDirectoryIsAnError) {
  const std::string tmp = ruclip_test::make_temp_dir();
  ruclip_test::write_file(tmp + "/file", "x");
  try {
    synth::write_dataset(tmp + "/file/sub", synth::Options{}, 3, 0);
    FAIL() << "no error";
  } catch (const ruclip::Error& e) {
    EXPECT_TRUE(contains(e.what(), tmp + "/file/sub")) << e.what();
  }
  EXPECT_THROW(synth::write_dataset(tmp + "/neg", synth::Options{}, -1, 0), ruclip::Error);
  fs::remove_all(tmp);
}

// The `ruclip synth` command itself, when the test runs with $RUCLIP_EXE (meson test does).
TEST(SyntheticFiles, Command) {
  const char* exe = std::getenv("RUCLIP_EXE");
  if (!exe || !fs::exists(exe)) GTEST_SKIP() << "RUCLIP_EXE not set";
  const std::string dir = ruclip_test::make_temp_dir();
  const std::string out = dir + "/out.json";
  const std::string cmd = std::string("'") + exe + "' synth --out '" + dir + "/ds' --count 12 --style eval " +
                          "--width 80 --height 60 --pairs held --jpeg-quality 85 --seed 5 > '" + out + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto summary = nlohmann::json::parse(ruclip_test::read_file(out));
  EXPECT_EQ(summary.at("count"), 12);
  EXPECT_EQ(summary.at("dir"), dir + "/ds");
  EXPECT_EQ(summary.at("format"), "jpg");
  EXPECT_EQ(summary.at("width"), 80);
  EXPECT_EQ(summary.at("files").at("captions"), dir + "/ds/captions.csv");
  const auto labels = read_csv(dir + "/ds/labels.csv");
  ASSERT_EQ(labels.size(), 13u);
  const auto held = synth::default_holdout();
  std::set<std::string> held_labels;
  for (const auto& p : held) held_labels.insert(synth::label(p.first, p.second));
  for (size_t i = 1; i < labels.size(); ++i) {
    EXPECT_EQ(held_labels.count(labels[i][1]), 1u) << labels[i][1];
    const auto img = ruclip::load_image(dir + "/ds/" + labels[i][0]);
    EXPECT_EQ(img.width, 80);
    EXPECT_EQ(img.height, 60);
  }
  // Bad usage: exit 2; unwritable: exit 1.
  const std::string quiet = " >/dev/null 2>&1";
  EXPECT_EQ(WEXITSTATUS(std::system((std::string("'") + exe + "' synth --out x --count abc" + quiet).c_str())), 2);
  EXPECT_EQ(WEXITSTATUS(std::system((std::string("'") + exe + "' synth --out x --count 3 --style nope" + quiet).c_str())),
            2);
  EXPECT_EQ(WEXITSTATUS(std::system(
                (std::string("'") + exe + "' synth --out '" + out + "/sub' --count 3" + quiet).c_str())),
            1);
  fs::remove_all(dir);
}

// Not a limit that matters to anyone, only a guard against something badly slow.
TEST(SyntheticSpeed, ThousandsPerSecond) {
  synth::Generator gen(synth::Options{}, 0);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 2000; ++i) gen.next();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ info ] 2000 train samples (64x64) in %.3f s\n", s);
  EXPECT_LT(s, 20.0);
}

}  // namespace

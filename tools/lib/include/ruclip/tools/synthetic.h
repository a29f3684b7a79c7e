// Synthetic Russian image-caption pairs: colored shapes, solid screens and
// videotestsrc-like "ball" frames with grammatical Russian captions. Used to
// train the project's own small CLIP, to evaluate it zero-shot on a second,
// deliberately different renderer, and to feed test frames to the element.
//
// Everything is deterministic given (Options, seed): one std::mt19937_64 per
// Generator, no global state, and our own uniform/normal transforms (not the
// standard library's distributions, whose output differs between libraries).
// Library: ruclip_tools (for the `ruclip` command and the tests), not the inference library.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "ruclip/tools/image_files.h"

namespace ruclip::synth {

// To add a shape or color: append the enumerator before the count, then add
// its row to the tables in synthetic.cpp (words, and geometry or RGB).
enum class Shape { Circle, Square, Triangle, Star };  // круг, квадрат, треугольник, звезда
inline constexpr int kShapeCount = 4;

// The first kShapeColorCount colors are the label colors a shape can have.
// Gray ("серый") is a background tone only: never a shape, a label or a solid screen.
enum class Color { Red, Orange, Yellow, Green, Blue, Purple, White, Black, Gray };
inline constexpr int kShapeColorCount = 8;
inline constexpr int kColorCount = 9;

using Pair = std::pair<Color, Shape>;

// Pairs that never appear when training (Pairs::Seen), so zero-shot
// evaluation can ask for combinations the model never saw together:
//   синий треугольник, жёлтая звезда, красный квадрат,
//   зелёный круг, фиолетовый квадрат, оранжевая звезда.
// Every color and every shape still appears with other partners
// (white and black keep all four shapes; the videotestsrc default
// "белый круг на чёрном фоне" stays seen).
std::set<Pair> default_holdout();

// Train and Eval are two different renderers: Eval has its own default canvas
// (96x72, not square), position/size/rotation distributions, margins, tighter
// color jitter, no noise or gradients, and draws supersampled (2x, area
// downscale) where Train draws with OpenCV's LINE_AA directly.
enum class Style { Train, Eval };

// Which (color, shape) pairs generated objects may have.
enum class Pairs { Seen, Held, All };  // Seen: not in holdout; Held: only holdout (no solid screens)

struct Options {
  int width = 0;   // 0: the style's default (Train 64x64, Eval 96x72); otherwise 8..4096
  int height = 0;
  Style style = Style::Train;
  std::set<Pair> holdout = default_holdout();
  Pairs pairs = Pairs::Seen;
  bool include_solid = true;  // whole-frame single-color scenes ("красный фон")
  int jpeg_quality = 0;       // 0: none; 1..100: every image JPEG encoded and decoded again
};

// Where one drawn object is, in pixels: center and circumscribed radius.
struct Object {
  float x = 0, y = 0, radius = 0;
};

struct Sample {
  Image image;             // RGB, width x height
  std::string caption;     // varied Russian description
  std::string label;       // label(color, shape), or solid_label(color) for a solid screen
  Color color = Color::Red;
  Shape shape = Shape::Circle;  // meaningless when solid
  Color background = Color::Black;  // the background tone (== color when solid)
  bool solid = false;
  int count = 0;                // objects drawn (0 when solid)
  std::vector<Object> objects;  // one per drawn object
  std::vector<uint8_t> jpeg;    // the encoded bytes when Options::jpeg_quality > 0
};

class Generator {
 public:
  // Throws ruclip::Error for bad options (size, quality, a pair set with nothing left).
  Generator(Options options, uint64_t seed);
  Sample next();
  const Options& options() const { return options_; }  // with the size defaults filled in

 private:
  Options options_;
  std::mt19937_64 rng_;
  std::vector<Pair> pairs_;  // what next() draws objects from
};

// ---- Words ----------------------------------------------------------------

enum class Size { Unspecified, Small, Large };  // маленький, большой
enum class Position { Unspecified, Left, Right, Top, Bottom, Center };  // слева, справа, вверху, внизу, в центре

// One caption. No color: the shape alone ("круг"); no shape: "фигура"
// ("красная фигура"). Word order: [numeral] [size] [color] noun [position] [на ... фоне].
struct Phrase {
  std::optional<Color> color;
  std::optional<Shape> shape;
  int count = 1;  // 1..4
  Size size = Size::Unspecified;
  Position position = Position::Unspecified;
  std::optional<Color> background;
};

// "красный круг", "две маленькие красные звезды слева на сером фоне",
// "три жёлтых треугольника". Throws ruclip::Error for a count outside 1..4.
std::string describe(const Phrase& phrase);

// Nominative singular: "красный круг", "красная звезда".
std::string label(Color color, Shape shape);
// "красный фон".
std::string solid_label(Color color);
// All kShapeColorCount x kShapeCount labels, color-major.
std::vector<std::string> all_labels();
// The solid_label of each shape color.
std::vector<std::string> all_solid_labels();
// Each color's reference RGB: chromatic colors are jittered around it (hue
// +-7 degrees Train, +-4 Eval; saturation and value scaled 0.85..1.1 / 0.92..1.05),
// so hue ranges never overlap; white is (255,255,255), drawn 230..255;
// black is (0,0,0), drawn 0..36; gray (128,128,128), drawn 102..158.
std::array<uint8_t, 3> canonical_rgb(Color color);
// The shape color (never gray) a pixel shows: black when dark, white or black
// when unsaturated, otherwise the chromatic color of nearest hue.
Color nearest_color(uint8_t r, uint8_t g, uint8_t b);

// ---- Files -----------------------------------------------------------------

struct DatasetSummary {
  int count = 0;
  std::string dir;
  std::string captions_csv;  // DIR/captions.csv: file,caption
  std::string labels_csv;    // DIR/labels.csv: file,label
  std::string images_dir;    // DIR/images
  std::string extension;     // "png", or "jpg" with JPEG compression
};

// Writes DIR/images/NNNNNN.png (.jpg: the exact bytes of Sample::jpeg),
// DIR/captions.csv and DIR/labels.csv (header row, file paths relative to
// DIR, RFC 4180 quoting). Creates DIR; overwrites files of the same names.
// Throws ruclip::Error naming the path on any failure.
DatasetSummary write_dataset(const std::string& dir, const Options& options, int count, uint64_t seed);

// One CSV field, quoted only when it needs to be.
std::string csv_field(const std::string& text);

}  // namespace ruclip::synth

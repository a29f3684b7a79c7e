// The ruCLIP article's similarity picture (OpenAI CLIP's notebook style): the
// cosine matrix of texts against images as a PNG, drawn with Cairo and Pango
// (Cyrillic through the font, DejaVu Sans where installed). Built where
// pangocairo is (RUCLIP_HAVE_PANGO); the header itself needs neither.
//
// Layout, in pixels, for T texts and I images (all sizes constant, so the
// picture's size follows from the counts alone; see SimilarityLayout):
//
//   +------------------------------------------------------------------+
//   | margin                                                           |
//   |              title (centred, title_height tall)                  |
//   |              [thumb 0][thumb 1]...[thumb I-1]                    |  one cell tall
//   |  text 0      [ 0.27  ][ 0.11  ]...            |bar| 0.27        |
//   |  text 1      [ 0.09  ][ 0.31  ]...            |bar|             |  one cell per text
//   |  ...                                          |bar| 0.09        |
//   | margin                                                           |
//   +------------------------------------------------------------------+
//
// - The grid's top-left corner is (grid_x(), grid_y()); the cell of text i and
//   image j is the cell x cell square at (grid_x() + j*cell, grid_y() + i*cell),
//   filled edge to edge with the colour of its cosine and the cosine printed
//   in its middle ("0.27"); its corners are plain fill.
// - Image j's thumbnail sits in the cell x cell square above column j, scaled
//   (aspect kept) to fit inside it less thumb_padding on each side, centred.
// - Texts are right-aligned in the label column left of the grid, wrapped at
//   words and cut with "…" after three lines.
// - Colours: viridis (perceptual; dark violet -> teal -> yellow), from the
//   matrix's lowest cosine (darkest) to its highest (lightest), as the
//   notebook maps its colour range to the values shown. The colour bar right
//   of the grid shows that range with the lowest, middle and highest values.
#pragma once
#include <string>
#include <vector>

namespace ruclip_cli {

struct SimilarityLayout {
  static constexpr int margin = 16;
  static constexpr int title_height = 40;
  static constexpr int label_width = 260;  // the texts' column, its gap to the grid included
  static constexpr int label_gap = 12;
  static constexpr int cell = 96;
  static constexpr int thumb_padding = 6;
  static constexpr int bar_gap = 16;  // grid -> colour bar
  static constexpr int bar_width = 18;
  static constexpr int bar_label_width = 56;

  static int grid_x() { return margin + label_width; }
  static int grid_y() { return margin + title_height + cell; }
  static int width(int images) { return grid_x() + images * cell + bar_gap + bar_width + bar_label_width + margin; }
  static int height(int texts) { return grid_y() + texts * cell + margin; }
};

// Writes the picture of `cosine` (texts.size() rows of image_paths.size()
// values) to `path`, decoding each image (ruclip::load_image) for its
// thumbnail. Throws ruclip::Error naming the file when an image cannot be
// read or the PNG cannot be written. Returns warnings for the user (a font
// without glyphs for some of the texts).
std::vector<std::string> write_similarity_png(const std::string& path, const std::string& title,
                                              const std::vector<std::string>& texts,
                                              const std::vector<std::string>& image_paths,
                                              const std::vector<std::vector<float>>& cosine);

}  // namespace ruclip_cli

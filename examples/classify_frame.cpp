// classify_frame: the C++ API in one page. Loads a model, embeds a video
// frame (here a solid colour, as a camera would hand it over: packed RGB) and
// three Russian phrases, and prints each phrase's probability.
//
//   classify_frame MODEL_DIR [R G B]        e.g. classify_frame models/ruclip-shapes-ru 255 0 0
//
// Build: link the inference library (ruclip_dep in meson; examples/meson.build).
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "ruclip/error.h"
#include "ruclip/image.h"
#include "ruclip/model.h"
#include "ruclip/zero_shot.h"

int main(int argc, char** argv) {
  if (argc != 2 && argc != 5) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [R G B]\n", argv[0]);
    return 2;
  }
  const unsigned char rgb[3] = {static_cast<unsigned char>(argc == 5 ? std::atoi(argv[2]) : 255),
                                static_cast<unsigned char>(argc == 5 ? std::atoi(argv[3]) : 0),
                                static_cast<unsigned char>(argc == 5 ? std::atoi(argv[4]) : 0)};
  try {
    // Loading reads the checkpoint and picks this CPU's kernels (GPU: options.device).
    ruclip::ModelOptions options;
    options.device = ruclip::Device::parse("cpu");
    std::unique_ptr<ruclip::Model> model = ruclip::Model::load(argv[1], options);

    // The phrases become one normalized text embedding each (through the model's templates).
    const std::vector<std::string> phrases = {"красный фон", "синий фон", "зелёный фон"};
    std::shared_ptr<const ruclip::LabelSet> labels = ruclip::build_label_set(*model, phrases);

    // A 320x240 frame, packed RGB: the model crops, resizes and normalizes it itself.
    const int width = 320, height = 240;
    std::vector<unsigned char> pixels(static_cast<size_t>(width) * height * 3);
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = rgb[i % 3];
    ruclip::FrameView frame;
    frame.format = ruclip::PixelFormat::RGB;
    frame.width = width;
    frame.height = height;
    frame.planes[0] = pixels.data();
    frame.strides[0] = width * 3;

    // One image embedding, scored against the phrases: softmax(logit_scale * cosine).
    const ruclip::Embeddings image = model->encode_frames({frame});
    for (const ruclip::LabelScore& s : ruclip::score_image(*labels, image.row(0), image.dim, model->logit_scale()))
      std::printf("%s\t%.4f\t%.4f\n", s.label.c_str(), s.probability, s.cosine);
  } catch (const ruclip::Error& e) {
    std::fprintf(stderr, "classify_frame: %s\n", e.what());
    return 1;
  }
  return 0;
}

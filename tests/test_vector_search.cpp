// The exact scan of `ruclip search` (vector_search.h) against a plain double
// computation, on every storage, odd dimensions (the kernels' tails), one and
// several threads; float16 conversion against IEEE's rules. Run a second time
// under RUCLIP_MAX_CPU_ISA=avx2 (tests/meson.build), so that the AVX2 kernels
// are checked on an AVX-512 machine too.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "ruclip/cpu.h"
#include "ruclip/error.h"
#include "ruclip/tools/vector_search.h"

namespace {

using ruclip::VectorMatrix;
using ruclip::VectorStorage;

uint32_t bits(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}

TEST(Half, RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = ruclip::half_to_float(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(ruclip::half_to_float(ruclip::float_to_half(f))));
      continue;
    }
    EXPECT_EQ(ruclip::float_to_half(f), h) << std::hex << h;
  }
}

TEST(Half, RoundsToNearestEven) {
  EXPECT_EQ(ruclip::half_to_float(0x3C00), 1.0f);
  // 1 + 2^-11 lies halfway between 1 and the next half (1 + 2^-10): to even, 1.
  EXPECT_EQ(ruclip::float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  // 1 + 3 * 2^-11 lies halfway between 1 + 2^-10 and 1 + 2^-9: to even, 1 + 2^-9.
  EXPECT_EQ(ruclip::float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_EQ(ruclip::float_to_half(65504.0f), 0x7BFF);  // the largest half
  EXPECT_EQ(ruclip::float_to_half(65520.0f), 0x7C00);  // rounds past it: infinity
  EXPECT_EQ(ruclip::float_to_half(-std::numeric_limits<float>::infinity()), 0xFC00);
  EXPECT_EQ(ruclip::float_to_half(std::ldexp(1.0f, -24)), 0x0001);  // the smallest subnormal
  EXPECT_EQ(ruclip::float_to_half(std::ldexp(1.0f, -26)), 0x0000);  // below half of it: zero
  EXPECT_EQ(bits(ruclip::half_to_float(0x8000)), 0x80000000u);      // -0 stays -0
}

std::vector<float> random_unit_rows(size_t rows, int dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> out(rows * dim);
  for (size_t r = 0; r < rows; ++r) {
    double n = 0;
    for (int i = 0; i < dim; ++i) n += std::pow(out[r * dim + i] = normal(rng), 2);
    for (int i = 0; i < dim; ++i) out[r * dim + i] /= static_cast<float>(std::sqrt(n));
  }
  return out;
}

TEST(VectorMatrix, TopEqualsABruteForceScan) {
  for (const VectorStorage storage : {VectorStorage::kFloat32, VectorStorage::kFloat16}) {
    for (const int dim : {1, 7, 16, 31, 33, 512}) {
      const size_t rows = dim == 512 ? 3000 : 700;
      const std::vector<float> data = random_unit_rows(rows, dim, dim);
      const std::vector<float> query = random_unit_rows(1, dim, 99);
      VectorMatrix m(dim, storage);
      for (size_t r = 0; r < rows; ++r) m.add(&data[r * dim]);
      ASSERT_EQ(m.rows(), rows);
      // What the stored values give, in double.
      std::vector<std::pair<double, size_t>> want;
      for (size_t r = 0; r < rows; ++r) {
        double s = 0;
        for (int i = 0; i < dim; ++i) {
          const float v = storage == VectorStorage::kFloat16
                              ? ruclip::half_to_float(ruclip::float_to_half(data[r * dim + i]))
                              : data[r * dim + i];
          s += static_cast<double>(v) * query[i];
        }
        want.push_back({-s, r});
      }
      std::sort(want.begin(), want.end());
      for (const int threads : {1, 2, 5}) {
        const auto hits = m.top(query.data(), 20, threads);
        ASSERT_EQ(hits.size(), 20u);
        for (size_t k = 0; k < hits.size(); ++k) {
          EXPECT_NEAR(hits[k].score, -want[k].first, 1e-5) << "dim " << dim << " rank " << k;
          EXPECT_NEAR(m.dot(hits[k].row, query.data()), hits[k].score, 1e-6);
          if (k > 0) EXPECT_GE(hits[k - 1].score, hits[k].score);
        }
        // The same rows unless two scores are within rounding of each other.
        for (size_t k = 0; k + 1 < hits.size(); ++k)
          if (-want[k].first - -want[k + 1].first > 1e-5) EXPECT_EQ(hits[k].row, want[k].second) << "dim " << dim;
      }
    }
  }
}

TEST(VectorMatrix, TiesGoToTheLowerRowWhateverTheThreads) {
  const int dim = 64;
  std::vector<float> row(dim, 0.f);
  row[0] = 1.f;
  VectorMatrix m(dim, VectorStorage::kFloat32);
  for (int r = 0; r < 5000; ++r) m.add(row.data());
  for (const int threads : {1, 2, 3}) {
    const auto hits = m.top(row.data(), 4, threads);
    ASSERT_EQ(hits.size(), 4u);
    for (size_t k = 0; k < 4; ++k) EXPECT_EQ(hits[k].row, k);
  }
}

TEST(VectorMatrix, SmallAndEmpty) {
  VectorMatrix m(3, VectorStorage::kFloat16);
  const float q[3] = {1, 0, 0};
  EXPECT_TRUE(m.top(q, 5).empty());
  const float a[3] = {0.5f, 0.5f, 0};
  m.add(a);
  const auto hits = m.top(q, 5);
  ASSERT_EQ(hits.size(), 1u);
  EXPECT_FLOAT_EQ(hits[0].score, 0.5f);
  EXPECT_EQ(m.bytes(), 6u);
  EXPECT_THROW(m.dot(1, q), ruclip::Error);
  EXPECT_THROW(VectorMatrix(0, VectorStorage::kFloat32), ruclip::Error);
  EXPECT_THROW(ruclip::parse_vector_storage("int8"), ruclip::Error);
}

TEST(VectorMatrix, KernelFollowsTheCpu) {
  const ruclip::CpuFeatures& cpu = ruclip::cpu_features();
  const std::string kernel = VectorMatrix(8, VectorStorage::kFloat32).kernel();
  if (cpu.avx512f)
    EXPECT_EQ(kernel, "avx512");
  else if (cpu.avx2 && cpu.fma && cpu.f16c)
    EXPECT_EQ(kernel, "avx2");
  else
    EXPECT_EQ(kernel, "portable");
  std::cout << "kernel " << kernel << " (RUCLIP_MAX_CPU_ISA=" << cpu.isa_cap << ")\n";
}

}  // namespace

namespace {

TEST(VectorMatrix, AViewScansLikeTheOwner) {
  const int dim = 40;
  const std::vector<float> data = random_unit_rows(500, dim, 7);
  const std::vector<float> query = random_unit_rows(1, dim, 8);
  for (const VectorStorage storage : {VectorStorage::kFloat32, VectorStorage::kFloat16}) {
    VectorMatrix owner(dim, storage);
    for (size_t r = 0; r < 500; ++r) owner.add(&data[r * dim]);
    // The owner's bytes, kept alive by the view.
    auto bytes = std::make_shared<std::vector<uint8_t>>(static_cast<const uint8_t*>(owner.data()),
                                                        static_cast<const uint8_t*>(owner.data()) + owner.bytes());
    VectorMatrix view = VectorMatrix::view(bytes->data(), 500, dim, storage, bytes);
    bytes.reset();
    EXPECT_EQ(view.bytes(), owner.bytes());
    const auto a = owner.top(query.data(), 10), b = view.top(query.data(), 10);
    ASSERT_EQ(a.size(), b.size());
    for (size_t k = 0; k < a.size(); ++k) {
      EXPECT_EQ(a[k].row, b[k].row);
      EXPECT_EQ(a[k].score, b[k].score);
    }
    EXPECT_THROW(view.add(data.data()), ruclip::Error);
  }
}

}  // namespace

// --camera / --since: the scan skips the rows the mask leaves out, and finds
// what a scan of only the kept rows finds.
TEST(VectorMatrix, KeepMaskScansOnlyTheKeptRows) {
  const int dim = 32;
  const size_t rows = 3000;
  const std::vector<float> data = random_unit_rows(rows, dim, 7);
  const std::vector<float> query = random_unit_rows(1, dim, 8);
  for (const auto storage : {VectorStorage::kFloat32, VectorStorage::kFloat16}) {
    VectorMatrix all(dim, storage), kept(dim, storage);
    std::vector<uint8_t> keep(rows);
    std::vector<size_t> kept_rows;
    for (size_t r = 0; r < rows; ++r) {
      all.add(&data[r * dim]);
      keep[r] = r % 3 == 1;
      if (keep[r]) {
        kept.add(&data[r * dim]);
        kept_rows.push_back(r);
      }
    }
    for (const int threads : {1, 2}) {
      const auto masked = all.top(query.data(), 15, threads, keep.data());
      const auto alone = kept.top(query.data(), 15, threads);
      ASSERT_EQ(masked.size(), alone.size());
      for (size_t k = 0; k < masked.size(); ++k) {
        EXPECT_EQ(masked[k].row, kept_rows[alone[k].row]);
        EXPECT_EQ(masked[k].score, alone[k].score);
      }
    }
    // add_rows copies rows as stored: the copy scans like the original.
    VectorMatrix copy(dim, storage);
    copy.add_rows(all);
    EXPECT_EQ(copy.rows(), rows);
    const auto a = all.top(query.data(), 10, 1), b = copy.top(query.data(), 10, 1);
    for (size_t k = 0; k < a.size(); ++k) EXPECT_EQ(a[k].row, b[k].row);
    EXPECT_EQ(a[0].score, b[0].score);
  }
}

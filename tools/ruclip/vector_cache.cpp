#include "vector_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "ruclip/error.h"

namespace ruclip_cli {
namespace {

constexpr size_t kHeader = 4096;
constexpr const char* kMagic = "ruclip-vectors 1";

std::string header_text(const std::string& key, ruclip::VectorStorage storage, size_t rows, int dim) {
  return std::string(kMagic) + "\n" + key + "\n" + ruclip::vector_storage_name(storage) + "\n" + std::to_string(rows) +
         "\n" + std::to_string(dim) + "\n";
}

size_t rows_offset(int dim) { return (kHeader + dim * sizeof(double) + 63) / 64 * 64; }

size_t value_size(ruclip::VectorStorage storage) {
  return storage == ruclip::VectorStorage::kFloat32 ? sizeof(float) : sizeof(uint16_t);
}

struct Mapping {
  void* data = MAP_FAILED;
  size_t size = 0;
  ~Mapping() {
    if (data != MAP_FAILED) munmap(data, size);
  }
};

}  // namespace

std::optional<MappedVectors> map_vectors(const std::string& path, const std::string& key, ruclip::VectorStorage storage,
                                         size_t rows, int dim) {
  const std::string header = header_text(key, storage, rows, dim);
  if (header.size() > kHeader || rows == 0) return std::nullopt;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  struct stat st {};
  const size_t want = rows_offset(dim) + rows * dim * value_size(storage);
  if (fstat(fd, &st) != 0 || static_cast<size_t>(st.st_size) != want) {
    close(fd);
    return std::nullopt;
  }
  auto mapping = std::make_shared<Mapping>();
  mapping->size = want;
  // MAP_POPULATE: the scan reads every page anyway; faulting them in at once
  // costs less than one fault per page during the first query.
  mapping->data = mmap(nullptr, want, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  close(fd);
  if (mapping->data == MAP_FAILED) return std::nullopt;
  const auto* bytes = static_cast<const uint8_t*>(mapping->data);
  if (std::memcmp(bytes, header.data(), header.size()) != 0 || bytes[header.size()] != 0) return std::nullopt;
  MappedVectors out{ruclip::VectorMatrix::view(bytes + rows_offset(dim), rows, dim, storage, mapping),
                    std::vector<double>(dim)};
  std::memcpy(out.column_sum.data(), bytes + kHeader, dim * sizeof(double));
  return out;
}

void write_vectors(const std::string& path, const std::string& key, const ruclip::VectorMatrix& matrix,
                   const std::vector<double>& column_sum) {
  const int dim = matrix.dim();
  std::string header = header_text(key, matrix.storage(), matrix.rows(), dim);
  if (header.size() > kHeader) throw ruclip::Error(path + ": the key is too long for the header");
  header.resize(rows_offset(dim), '\0');
  std::memcpy(&header[kHeader], column_sum.data(), dim * sizeof(double));
  write_file_atomically(path, "the vector file", [&](std::FILE* f) {
    return std::fwrite(header.data(), 1, header.size(), f) == header.size() &&
           std::fwrite(matrix.data(), 1, matrix.bytes(), f) == matrix.bytes();
  });
}

bool append_vectors(const std::string& path, const std::string& old_key, size_t old_rows, const std::string& new_key,
                    const ruclip::VectorMatrix& added, const std::vector<double>& column_sum) {
  const int dim = added.dim();
  const ruclip::VectorStorage storage = added.storage();
  const std::string old_header = header_text(old_key, storage, old_rows, dim);
  std::string new_header = header_text(new_key, storage, old_rows + added.rows(), dim);
  if (old_header.size() > kHeader || new_header.size() > kHeader) return false;
  const int fd = open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return false;
  const size_t old_size = rows_offset(dim) + old_rows * dim * value_size(storage);
  std::string seen(old_header.size() + 1, '\0');
  struct stat st {};
  bool ok = fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) == old_size &&
            pread(fd, seen.data(), seen.size(), 0) == static_cast<ssize_t>(seen.size()) &&
            seen.compare(0, old_header.size(), old_header) == 0 && seen.back() == '\0';
  // The rows first, then the sums and the header that make them part of the file.
  ok = ok && pwrite(fd, added.data(), added.bytes(), old_size) == static_cast<ssize_t>(added.bytes());
  ok = ok && pwrite(fd, column_sum.data(), dim * sizeof(double), kHeader) == static_cast<ssize_t>(dim * sizeof(double));
  new_header.resize(std::max(new_header.size() + 1, old_header.size() + 1), '\0');
  ok = ok && pwrite(fd, new_header.data(), new_header.size(), 0) == static_cast<ssize_t>(new_header.size());
  close(fd);
  return ok;
}

void write_file_atomically(const std::string& path, const std::string& what,
                           const std::function<bool(std::FILE*)>& write) {
  const std::string temporary = path + ".part";
  std::FILE* f = std::fopen(temporary.c_str(), "wb");
  if (!f) throw ruclip::Error(path + ": cannot write " + what + " (" + temporary + ": " + std::strerror(errno) + ")");
  bool ok = write(f);
  ok = std::fclose(f) == 0 && ok;
  std::error_code ec;
  if (ok) std::filesystem::rename(temporary, path, ec);
  if (!ok || ec) {
    std::filesystem::remove(temporary, ec);
    throw ruclip::Error(path + ": cannot write " + what);
  }
}

}  // namespace ruclip_cli

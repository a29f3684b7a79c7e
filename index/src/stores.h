// The two engines behind ruclip::index::Store, and what they share: the
// schema's version and the model record's keys.
#pragma once
#include <memory>
#include <string>

#include "ruclip/index/store.h"

namespace ruclip::index {

// index_info "format": what this code writes. Version 1 (files and their
// samples only, SQLite) is migrated to it when opened for writing.
constexpr const char* kFormat = "ruclip-index 2";
constexpr const char* kFormatV1 = "ruclip-index 1";

std::unique_ptr<Store> open_sqlite(const std::string& path, bool create);
std::unique_ptr<Store> open_postgresql(const std::string& uri, const std::string& printable, bool create);

}  // namespace ruclip::index

// Every failure the core reports to its callers: a message that names the
// file, field or property and the reason. Nothing else is thrown across the API.
#pragma once
#include <stdexcept>
#include <string>

namespace ruclip {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ruclip

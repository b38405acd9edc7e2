// libFuzzer entry point for the safetensors parser (whole file image in memory).
// Contract under test: every accepted tensor lies inside the input; every rejection
// is a Status naming the input; never a crash or a sanitizer report.
#include <cstddef>
#include <cstdint>

#include "base/check.h"
#include "formats/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = spool::formats::ParseSafetensors(data, size, "fuzz.safetensors");
  if (r.ok()) {
    for (const auto& t : r->tensors) SPOOL_CHECK(t.offset <= size && t.nbytes <= size - t.offset);
  } else {
    SPOOL_CHECK(r.status().message().rfind("fuzz.safetensors: ", 0) == 0);
  }
  return 0;
}

// libFuzzer entry point for the GGUF header parser (in-memory variant of ReadGguf).
// Contract under test: any byte string yields either a GgufFile whose tensors lie
// inside the input, or a Status naming the input; never a crash or a sanitizer report.
#include <cstddef>
#include <cstdint>

#include "base/check.h"
#include "formats/gguf.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = spool::formats::ReadGgufFromMemory(data, size, "fuzz.gguf");
  if (r.ok()) {
    for (const auto& t : r->tensors) {
      SPOOL_CHECK(t.offset <= size && t.nbytes <= size - t.offset);
      SPOOL_CHECK(t.offset % r->alignment == 0);
    }
    for (const auto& k : r->keys) (void)r->GetString(k), (void)r->GetIntArray(k), (void)r->GetFloatArray(k);
  } else {
    SPOOL_CHECK(r.status().message().rfind("fuzz.gguf: ", 0) == 0);
  }
  return 0;
}

// libFuzzer entry point for the tokenizer.json loader (owned by the tokenizer part).
// Contract under test: any byte string yields either a Tokenizer that can encode and
// decode arbitrary text, or a Status naming the input; never a crash or a sanitizer report.
#include <cstddef>
#include <cstdint>
#include <string>

#include "base/check.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto spec = spool::tokenizer::SpecFromJson(text, "", "fuzz.json");
  if (!spec.ok()) {
    SPOOL_CHECK(spec.status().message().rfind("fuzz.json", 0) == 0);
    return 0;
  }
  auto tok = spool::tokenizer::Tokenizer::Create(std::move(spec).value());
  if (!tok.ok()) return 0;
  for (const char* s : {"", "Hello world", "  a\n\tb 123 \xF0\x9F\xA6\x99 caf\xC3\xA9 <s>", "\xFF bad"}) {
    for (bool special : {false, true}) {
      auto ids = (*tok)->Encode(s, special, special);
      if (!ids.ok()) continue;
      for (int32_t id : *ids) SPOOL_CHECK(id >= 0 && id < (*tok)->n_vocab());
      auto decoded = (*tok)->Decode(*ids);
      SPOOL_CHECK(decoded.ok());
    }
  }
  return 0;
}

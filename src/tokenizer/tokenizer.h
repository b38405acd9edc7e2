// Text <-> token ids for every supported model (public API of the tokenizer part).
//
// A Tokenizer is immutable after creation; every method is const and
// thread-safe. Encoding cost is linear in the text (BPE merges use a heap per
// pre-token plus a per-call cache of repeated words); see docs/parts/tokenizer.md.
//
// Failures (bad files, invalid UTF-8, out-of-range ids) are returned as Status
// values naming the file/field with expected vs actual; nothing here aborts on
// bad input.
#pragma once

#include <cstdint>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "tokenizer/spec.h"

namespace spool::formats {
struct GgufFile;
}

namespace spool::tokenizer {

class Model;
class AddedTokenMatcher;
class Normalizer;
class PreTokenizer;
class TokenizerTables;

class Tokenizer {
 public:
  // Validates `spec` (array lengths, ids in range, merges, regexes) and builds
  // the lookup tables. Errors name spec.source.
  static Result<std::unique_ptr<Tokenizer>> Create(TokenizerSpec spec);
  ~Tokenizer();
  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Text -> ids. `add_special`: add the model's BOS/EOS (post-processor template
  // or GGUF add_bos/add_eos flags). `parse_special`: text such as "<|im_end|>"
  // becomes that control token; when false it is tokenised as plain text.
  // (User-defined added tokens are always matched, as in HF and llama.cpp.)
  // Fails with kInvalidArgument on invalid UTF-8 (naming the byte offset).
  Result<std::vector<int32_t>> Encode(std::string_view text, bool add_special, bool parse_special) const;

  // Encode with parse_special, except that no special token matches where it would
  // overlap one of `literal` (sorted, non-overlapping byte ranges of `text`): that
  // text is tokenised as plain text, within the same pass (so merges and prefix
  // handling are those of one Encode call). Used for chat prompts whose message
  // content must not become control tokens (chat/chat_prompt.h).
  Result<std::vector<int32_t>> EncodeWithLiteralSpans(std::string_view text, bool add_special,
                                                      std::span<const ByteSpan> literal) const;

  // The raw bytes one token stands for (may be part of a UTF-8 character, e.g.
  // "<0xE2>"). Control tokens give their text. Empty for an out-of-range id.
  const std::string& TokenToPiece(int32_t id) const;

  // ids -> text. Pieces are concatenated, the decoder's leading-space strip is
  // applied, and invalid UTF-8 is replaced by U+FFFD (one per maximal invalid
  // subpart, as Python/Rust "lossy" decoding). `skip_special` drops control
  // tokens. Out-of-range ids fail with kInvalidArgument.
  Result<std::string> Decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

  int32_t bos_id() const { return spec_.bos_id; }  // -1 if the model has none
  int32_t eos_id() const { return spec_.eos_id; }  // -1 if the model has none
  // Every id that ends generation: eos plus eot/eom/<|im_end|>/<|eot_id|>/...
  const std::set<int32_t>& eos_ids() const { return eos_ids_; }
  int32_t n_vocab() const { return static_cast<int32_t>(spec_.tokens.size()); }
  bool IsControl(int32_t id) const;
  TokenType GetTokenType(int32_t id) const;
  // Vocabulary text of a token (model alphabet, e.g. "Ġthe"); empty if out of range.
  const std::string& TokenText(int32_t id) const;
  // Id of a vocabulary entry by its exact text, or -1.
  int32_t FindToken(std::string_view text) const;
  const TokenizerSpec& spec() const { return spec_; }

 private:
  friend class StreamingDecoder;
  explicit Tokenizer(TokenizerSpec spec);
  Result<std::vector<int32_t>> EncodeImpl(std::string_view text, bool add_special, bool parse_special,
                                          std::span<const ByteSpan> literal) const;
  Status Init();

  TokenizerSpec spec_;
  std::vector<std::string> pieces_;   // decoded bytes per id
  std::set<int32_t> eos_ids_;
  std::unique_ptr<TokenizerTables> tables_;  // token text -> id
  std::unique_ptr<Model> model_;
  std::unique_ptr<AddedTokenMatcher> added_;
  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
};

// Turns a stream of ids into text chunks that are always complete, valid UTF-8.
// A character split across tokens is held back until its last byte arrives;
// bytes that can never form a valid character come out as U+FFFD. The
// concatenation of all chunks (including Flush) equals Tokenizer::Decode of the
// same ids. Not thread-safe; one per sequence. The tokenizer must outlive it.
class StreamingDecoder {
 public:
  // at_sequence_start=false: the ids continue earlier text (e.g. generated text after
  // a prompt), so the decoder's leading-space stripping does not apply (llama.cpp
  // prints token pieces as they are).
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool skip_special = false, bool at_sequence_start = true)
      : tok_(tokenizer),
        skip_special_(skip_special),
        at_sequence_start_(at_sequence_start),
        leading_to_strip_(at_sequence_start ? -1 : 0) {}
  // Returns the text that became complete with this token (possibly empty).
  // Fails with kInvalidArgument for an out-of-range id (state unchanged).
  Result<std::string> Push(int32_t id);
  // Push for a token the model generated: the model's vocabulary may be larger than
  // the tokenizer's (Qwen2's embedding has padding rows past the tokenizer's ids), and
  // such an id gives no text, as transformers' decode does. Negative ids still fail.
  Result<std::string> PushGenerated(int32_t id) {
    if (id >= tok_.n_vocab()) return std::string();
    return Push(id);
  }
  // Returns whatever is held back (an incomplete character becomes U+FFFD) and
  // resets to the state after construction.
  std::string Flush();

 private:
  const Tokenizer& tok_;
  bool skip_special_;
  bool at_sequence_start_;
  std::string pending_;     // bytes not yet emitted
  int leading_to_strip_ = -1;  // -1: not started
};

// Loaders. Each returns a ready Tokenizer or an error naming the file/field.
// GGUF: tokenizer.ggml.model in {llama, gpt2, bert}; tokenizer.ggml.pre in the
// list of docs/parts/tokenizer.md. Works on vocabulary-only files.
Result<std::unique_ptr<Tokenizer>> LoadTokenizerFromGguf(const formats::GgufFile& gguf);
// HF tokenizers format. `config_json_path` (tokenizer_config.json, may be
// empty) supplies add_bos_token/add_eos_token and eos_token when present.
Result<std::unique_ptr<Tokenizer>> LoadTokenizerFromJson(const std::string& tokenizer_json_path,
                                                         const std::string& config_json_path = "");
// Spec builders behind the loaders (for tests and tools).
Result<TokenizerSpec> SpecFromGguf(const formats::GgufFile& gguf);
Result<TokenizerSpec> SpecFromJson(const std::string& tokenizer_json_text, const std::string& config_json_text,
                                   const std::string& source_name);

// Convenience: `model_path` is a .gguf file (full model or vocabulary-only), a
// tokenizer.json file, or a Hugging Face model folder containing tokenizer.json
// (and optionally tokenizer_config.json).
Result<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_path);

}  // namespace spool::tokenizer

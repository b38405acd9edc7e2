// TokenizerSpec from GGUF metadata (tokenizer.ggml.*), following llama.cpp's
// conventions: model "llama" = SentencePiece BPE by score, "gpt2" = byte-level
// BPE with a pre-tokeniser chosen by tokenizer.ggml.pre, "bert" = WordPiece.
#include <algorithm>
#include <cctype>

#include "formats/gguf.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace spool::tokenizer {
namespace {

const char kLlama3Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char kQwen2Pattern[] =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char kGpt4oPattern[] =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char kTekkenPattern[] =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// DeepSeek LLM's letter class: Latin, Greek, Cyrillic, ... written out as ranges.
const char kDeepseekLetters[] =
    "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293\u0295-\u02AF\u0370-\u0373"
    "\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F"
    "\u0531-\u0556\u10A0-\u10C5\u13A0-\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77"
    "\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D"
    "\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4"
    "\u1FF6-\u1FFC\u2102\u2107\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139"
    "\u213C-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3\uA640-\uA66D"
    "\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17\uFF21-\uFF3A"
    "\uFF41-\uFF5A\U00010400-\U0001044F\U000104B0-\U000104D3\U000104D8-\U000104FB\U00010C80-\U00010CB2"
    "\U00010CC0-\U00010CF2\U000118A0-\U000118DF\U0001E900-\U0001E943]+";
const char kDeepseekCjk[] = "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+";

PreTokenizerStep SplitStep(const std::string& pattern) {
  PreTokenizerStep s;
  s.kind = PreTokenizerStep::Kind::kSplit;
  s.pattern = pattern;
  s.behavior = SplitBehavior::kIsolated;
  return s;
}

PreTokenizerStep ByteLevelStep() {
  PreTokenizerStep s;
  s.kind = PreTokenizerStep::Kind::kByteLevel;
  s.use_regex = false;  // splitting is done by the explicit Split steps
  return s;
}

// Regex splits for a GGUF pre-tokeniser name; false if the name is unknown.
bool PreTokenizerRegexes(const std::string& pre, std::vector<std::string>& regexes, bool& ignore_merges,
                         bool& nfc) {
  auto is = [&](std::initializer_list<const char*> names) {
    return std::any_of(names.begin(), names.end(), [&](const char* n) { return pre == n; });
  };
  if (pre.empty() || pre == "default") {
    regexes = {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2Pattern, R"(\p{N}+)", "[0-9][0-9][0-9]"};
  } else if (is({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"})) {
    regexes = {kLlama3Pattern};
    ignore_merges = true;
  } else if (is({"dbrx", "smaug-bpe", "chatglm-bpe"})) {
    regexes = {kLlama3Pattern};
  } else if (pre == "deepseek-llm") {
    regexes = {"[\r\n]", kDeepseekLetters, "\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+",
               "\\s+$", kDeepseekCjk, "\\p{N}+"};
  } else if (pre == "deepseek-coder") {
    regexes = {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", kDeepseekCjk, "\\p{N}"};
  } else if (pre == "deepseek-v3") {
    regexes = {"\\p{N}{1,3}", "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+",
               "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
               "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"};
  } else if (pre == "falcon") {
    regexes = {R"([\p{P}\$\+<=>\^~\|`]+)", kGpt2Pattern, "[0-9][0-9][0-9]"};
  } else if (is({"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"})) {
    regexes = {R"(\p{N})", kGpt2Pattern};
  } else if (is({"gpt-2", "phi-2", "mpt", "olmo", "jais", "trillion", "roberta-bpe", "jina-es", "jina-de",
                 "jina-v1-en", "jina-v2-es", "jina-v2-de", "jina-v2-code", "gigachat", "granite-docling"})) {
    regexes = {kGpt2Pattern};
  } else if (is({"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez", "hunyuan"})) {
    regexes = {kQwen2Pattern};
    nfc = pre != "stablelm2";  // Qwen2's tokenizer.json normalises to NFC
  } else if (is({"poro-chat", "bloom", "gpt3-finnish"})) {
    regexes = {R"( ?[^(\s|.,!?…。，、।۔،)]+)"};
  } else if (pre == "viking") {
    regexes = {R"( ?[^(\s|.,!?…。，、।۔،)]+)", R"(\p{N})"};
  } else if (pre == "tekken") {
    regexes = {kTekkenPattern};
  } else if (is({"gpt-4o", "llama4"})) {
    regexes = {kGpt4oPattern};
  } else {
    return false;
  }
  return true;
}

// Optional integer key: `def` when absent; error when present with a wrong type.
Result<int64_t> OptionalInt(const formats::GgufFile& g, const std::string& key, int64_t def) {
  if (!g.Find(key)) return def;
  return g.GetInt(key);
}
Result<bool> OptionalBool(const formats::GgufFile& g, const std::string& key, bool def) {
  if (!g.Find(key)) return def;
  return g.GetBool(key);
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

}  // namespace

Result<TokenizerSpec> SpecFromGguf(const formats::GgufFile& g) {
  TokenizerSpec spec;
  spec.source = g.path;
  SPOOL_ASSIGN_OR_RETURN(std::string model, g.GetString("tokenizer.ggml.model"));
  std::string pre;
  if (g.Find("tokenizer.ggml.pre")) {
    SPOOL_ASSIGN_OR_RETURN(pre, g.GetString("tokenizer.ggml.pre"));
  }
  SPOOL_ASSIGN_OR_RETURN(spec.tokens, g.GetStringArray("tokenizer.ggml.tokens"));
  const size_t n = spec.tokens.size();
  auto length_error = [&](const std::string& key, size_t got) {
    return InvalidFile(g.path + ": metadata '" + key + "' has " + std::to_string(got) +
                       " entries, expected one per token (" + std::to_string(n) + ")");
  };
  if (g.Find("tokenizer.ggml.scores")) {
    SPOOL_ASSIGN_OR_RETURN(std::vector<double> scores, g.GetFloatArray("tokenizer.ggml.scores"));
    if (scores.size() != n) return length_error("tokenizer.ggml.scores", scores.size());
    spec.scores = std::move(scores);
  }
  if (g.Find("tokenizer.ggml.token_type")) {
    SPOOL_ASSIGN_OR_RETURN(std::vector<int64_t> types, g.GetIntArray("tokenizer.ggml.token_type"));
    if (types.size() != n) return length_error("tokenizer.ggml.token_type", types.size());
    spec.types.reserve(n);
    for (size_t i = 0; i < n; ++i) {
      if (types[i] < 0 || types[i] > 6)
        return InvalidFile(g.path + ": metadata 'tokenizer.ggml.token_type'[" + std::to_string(i) + "] = " +
                           std::to_string(types[i]) + ", expected 0..6");
      spec.types.push_back(static_cast<TokenType>(types[i]));
    }
  } else {
    spec.types.assign(n, TokenType::kNormal);
  }

  auto token_id = [&](const std::string& key, int64_t def) -> Result<int32_t> {
    SPOOL_ASSIGN_OR_RETURN(int64_t id, OptionalInt(g, key, def));
    if (id < -1 || id >= static_cast<int64_t>(n))
      return InvalidFile(g.path + ": metadata '" + key + "' = " + std::to_string(id) + ", expected a token id in [0, " +
                         std::to_string(n) + ")");
    return static_cast<int32_t>(id);
  };

  bool add_bos = false, add_eos = false;
  if (model == "llama") {
    spec.model = ModelKind::kSpm;
    if (spec.scores.empty()) return InvalidFile(g.path + ": SentencePiece vocabulary without tokenizer.ggml.scores");
    SPOOL_ASSIGN_OR_RETURN(spec.bos_id, token_id("tokenizer.ggml.bos_token_id", 1));
    SPOOL_ASSIGN_OR_RETURN(spec.eos_id, token_id("tokenizer.ggml.eos_token_id", 2));
    SPOOL_ASSIGN_OR_RETURN(spec.unk_id, token_id("tokenizer.ggml.unknown_token_id", 0));
    SPOOL_ASSIGN_OR_RETURN(bool space_prefix, OptionalBool(g, "tokenizer.ggml.add_space_prefix", true));
    // Each plain-text fragment gets a leading space (llama.cpp: the first one
    // and every one after a special token, which is all of them), then ' ' -> '▁'.
    NormalizerStep replace;
    replace.kind = NormalizerStep::Kind::kReplace;
    replace.pattern = " ";
    replace.content = "\xE2\x96\x81";
    spec.normalizer.push_back(replace);
    if (space_prefix) {
      NormalizerStep prepend;
      prepend.kind = NormalizerStep::Kind::kPrepend;
      prepend.content = "\xE2\x96\x81";
      spec.normalizer.push_back(prepend);
    }
    spec.byte_fallback = true;
    spec.decoder.byte_fallback = true;
    spec.decoder.replace_from = "\xE2\x96\x81";
    spec.decoder.replace_to = " ";
    spec.decoder.strip_leading = space_prefix ? 1 : 0;
    add_bos = true;
  } else if (model == "gpt2") {
    spec.model = ModelKind::kBpe;
    SPOOL_ASSIGN_OR_RETURN(std::vector<std::string> merges, g.GetStringArray("tokenizer.ggml.merges"));
    spec.merges.reserve(merges.size());
    for (size_t i = 0; i < merges.size(); ++i) {
      const size_t space = merges[i].size() > 1 ? merges[i].find(' ', 1) : std::string::npos;
      if (space == std::string::npos)
        return InvalidFile(g.path + ": metadata 'tokenizer.ggml.merges'[" + std::to_string(i) + "] = '" + merges[i] +
                           "', expected two tokens separated by a space");
      spec.merges.emplace_back(merges[i].substr(0, space), merges[i].substr(space + 1));
    }
    std::vector<std::string> regexes;
    bool nfc = false;
    if (!PreTokenizerRegexes(pre, regexes, spec.ignore_merges, nfc))
      return Unsupported(g.path + ": tokenizer.ggml.pre = '" + pre + "' is not a supported pre-tokenizer");
    for (const auto& r : regexes) spec.pre_tokenizer.push_back(SplitStep(r));
    spec.pre_tokenizer.push_back(ByteLevelStep());
    if (nfc) spec.normalizer.push_back(NormalizerStep::Of(NormalizerStep::Kind::kNfc));
    SPOOL_ASSIGN_OR_RETURN(spec.bos_id, token_id("tokenizer.ggml.bos_token_id", -1));
    SPOOL_ASSIGN_OR_RETURN(spec.eos_id, token_id("tokenizer.ggml.eos_token_id", -1));
    SPOOL_ASSIGN_OR_RETURN(spec.unk_id, token_id("tokenizer.ggml.unknown_token_id", -1));
    spec.decoder.byte_level = true;
    add_bos = spec.ignore_merges;  // llama.cpp: Llama-3 style vocabularies add BOS by default
  } else if (model == "bert") {
    spec.model = ModelKind::kWordPiece;
    spec.word_prefix = "\xE2\x96\x81";
    spec.max_input_chars_per_word = 1 << 30;
    for (auto kind : {NormalizerStep::Kind::kBertClean, NormalizerStep::Kind::kNfd, NormalizerStep::Kind::kStripAccents,
                      NormalizerStep::Kind::kLowercase})
      spec.normalizer.push_back(NormalizerStep::Of(kind));
    PreTokenizerStep bert;
    bert.kind = PreTokenizerStep::Kind::kBert;
    spec.pre_tokenizer.push_back(bert);
    SPOOL_ASSIGN_OR_RETURN(spec.bos_id, token_id("tokenizer.ggml.cls_token_id", 101));
    SPOOL_ASSIGN_OR_RETURN(spec.eos_id, token_id("tokenizer.ggml.seperator_token_id", 102));
    SPOOL_ASSIGN_OR_RETURN(spec.unk_id, token_id("tokenizer.ggml.unknown_token_id", 100));
    spec.decoder.replace_from = "\xE2\x96\x81";
    spec.decoder.replace_to = " ";
    spec.decoder.strip_leading = 1;
    add_bos = add_eos = true;  // [CLS] text [SEP]
  } else {
    return Unsupported(g.path + ": tokenizer.ggml.model = '" + model +
                       "' is not supported (expected llama, gpt2 or bert)");
  }
  SPOOL_ASSIGN_OR_RETURN(add_bos, OptionalBool(g, "tokenizer.ggml.add_bos_token", add_bos));
  SPOOL_ASSIGN_OR_RETURN(add_eos, OptionalBool(g, "tokenizer.ggml.add_eos_token", add_eos));
  if (add_bos && spec.bos_id >= 0) spec.prefix_ids.push_back(spec.bos_id);
  if (add_eos && spec.eos_id >= 0) spec.suffix_ids.push_back(spec.eos_id);
  for (const char* key : {"tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"}) {
    if (!g.Find(key)) continue;
    SPOOL_ASSIGN_OR_RETURN(int32_t id, token_id(key, -1));
    if (id >= 0) spec.extra_eos_ids.push_back(id);
  }

  // Added tokens: control/unknown tokens are matched only with parse_special,
  // user-defined ones always (llama.cpp tokenizer_st_partition).
  std::string name;
  if (g.Find("general.name")) {
    SPOOL_ASSIGN_OR_RETURN(name, g.GetString("general.name"));
  }
  const std::string lname = Lower(name);
  const bool phi3 = lname.find("phi-3") != std::string::npos || lname.find("phi3") != std::string::npos;
  for (size_t i = 0; i < n; ++i) {
    const TokenType t = spec.types[i];
    if (t != TokenType::kControl && t != TokenType::kUserDefined && t != TokenType::kUnknown) continue;
    AddedToken a;
    a.id = static_cast<int32_t>(i);
    a.content = spec.tokens[i];
    a.special = t != TokenType::kUserDefined;
    // llama.cpp: Phi-3's special tokens swallow the whitespace after them.
    if (phi3) a.rstrip = a.content != "<unk>" && a.content != "<s>" && a.content != "<|endoftext|>";
    spec.added_tokens.push_back(std::move(a));
  }
  return spec;
}

Result<std::unique_ptr<Tokenizer>> LoadTokenizerFromGguf(const formats::GgufFile& gguf) {
  SPOOL_ASSIGN_OR_RETURN(TokenizerSpec spec, SpecFromGguf(gguf));
  return Tokenizer::Create(std::move(spec));
}

}  // namespace spool::tokenizer

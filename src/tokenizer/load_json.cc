// TokenizerSpec from a Hugging Face tokenizer.json (+ optional
// tokenizer_config.json). Every unknown component type is rejected with
// kUnsupported naming the JSON path; a missing or mistyped field is kInvalidFile.
#include <nlohmann/json.hpp>

#include "base/strings.h"
#include "tokenizer/tokenizer.h"

namespace spool::tokenizer {
namespace {

using Json = nlohmann::json;

// Small helpers that turn JSON shape errors into Status values.
class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  Status Error(const std::string& path, const std::string& what) const {
    return InvalidFile(source_ + ": " + path + ": " + what);
  }
  Status Unsupported(const std::string& path, const std::string& what) const {
    return ::spool::Unsupported(source_ + ": " + path + ": " + what);
  }
  Result<const Json*> Field(const Json& obj, const std::string& path, const char* key) const {
    if (!obj.is_object()) return Error(path, "expected an object, got " + std::string(obj.type_name()));
    auto it = obj.find(key);
    if (it == obj.end()) return Error(path, std::string("missing field '") + key + "'");
    return &*it;
  }
  Result<std::string> String(const Json& obj, const std::string& path, const char* key) const {
    SPOOL_ASSIGN_OR_RETURN(const Json* v, Field(obj, path, key));
    if (!v->is_string()) return Error(path + "." + key, "expected a string, got " + std::string(v->type_name()));
    return v->get<std::string>();
  }
  // Optional fields: absent or null give `def`.
  Result<bool> OptBool(const Json& obj, const std::string& path, const char* key, bool def) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return def;
    if (!it->is_boolean()) return Error(path + "." + key, "expected a boolean, got " + std::string(it->type_name()));
    return it->get<bool>();
  }
  Result<std::string> OptString(const Json& obj, const std::string& path, const char* key, std::string def) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return def;
    if (!it->is_string()) return Error(path + "." + key, "expected a string, got " + std::string(it->type_name()));
    return it->get<std::string>();
  }
  Result<int64_t> OptInt(const Json& obj, const std::string& path, const char* key, int64_t def) const {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return def;
    if (!it->is_number_integer()) return Error(path + "." + key, "expected an integer, got " + std::string(it->type_name()));
    return it->get<int64_t>();
  }
  // {"String": "x"} or {"Regex": "x"}.
  Status Pattern(const Json& obj, const std::string& path, std::string& pattern, bool& is_regex) const {
    SPOOL_ASSIGN_OR_RETURN(const Json* p, Field(obj, path, "pattern"));
    if (p->is_object() && p->contains("String") && (*p)["String"].is_string()) {
      pattern = (*p)["String"].get<std::string>();
      is_regex = false;
    } else if (p->is_object() && p->contains("Regex") && (*p)["Regex"].is_string()) {
      pattern = (*p)["Regex"].get<std::string>();
      is_regex = true;
    } else {
      return Error(path + ".pattern", "expected {\"String\": ...} or {\"Regex\": ...}");
    }
    return Status::Ok();
  }
  const std::string& source() const { return source_; }

 private:
  std::string source_;
};

Result<std::string> TypeOf(const Reader& r, const Json& obj, const std::string& path) {
  return r.String(obj, path, "type");
}

Status ParseNormalizer(const Reader& r, const Json& n, const std::string& path, std::vector<NormalizerStep>& out) {
  if (n.is_null()) return Status::Ok();
  SPOOL_ASSIGN_OR_RETURN(std::string type, TypeOf(r, n, path));
  using K = NormalizerStep::Kind;
  NormalizerStep step;
  if (type == "Sequence") {
    SPOOL_ASSIGN_OR_RETURN(const Json* list, r.Field(n, path, "normalizers"));
    if (!list->is_array()) return r.Error(path + ".normalizers", "expected an array");
    for (size_t i = 0; i < list->size(); ++i)
      SPOOL_TRY(ParseNormalizer(r, (*list)[i], path + ".normalizers[" + std::to_string(i) + "]", out));
    return Status::Ok();
  }
  if (type == "NFC") { out.push_back(NormalizerStep::Of(K::kNfc)); return Status::Ok(); }
  if (type == "NFKC") { out.push_back(NormalizerStep::Of(K::kNfkc)); return Status::Ok(); }
  if (type == "NFD") { out.push_back(NormalizerStep::Of(K::kNfd)); return Status::Ok(); }
  if (type == "NFKD") { out.push_back(NormalizerStep::Of(K::kNfkd)); return Status::Ok(); }
  if (type == "Lowercase") { out.push_back(NormalizerStep::Of(K::kLowercase)); return Status::Ok(); }
  if (type == "StripAccents") { out.push_back(NormalizerStep::Of(K::kStripAccents)); return Status::Ok(); }
  if (type == "Prepend") {
    step.kind = K::kPrepend;
    SPOOL_ASSIGN_OR_RETURN(step.content, r.String(n, path, "prepend"));
    out.push_back(step);
    return Status::Ok();
  }
  if (type == "Replace") {
    step.kind = K::kReplace;
    SPOOL_TRY(r.Pattern(n, path, step.pattern, step.pattern_is_regex));
    SPOOL_ASSIGN_OR_RETURN(step.content, r.String(n, path, "content"));
    out.push_back(step);
    return Status::Ok();
  }
  if (type == "Strip") {
    step.kind = K::kStrip;
    SPOOL_ASSIGN_OR_RETURN(step.left, r.OptBool(n, path, "strip_left", true));
    SPOOL_ASSIGN_OR_RETURN(step.right, r.OptBool(n, path, "strip_right", true));
    out.push_back(step);
    return Status::Ok();
  }
  if (type == "BertNormalizer") {
    SPOOL_ASSIGN_OR_RETURN(bool clean, r.OptBool(n, path, "clean_text", true));
    SPOOL_ASSIGN_OR_RETURN(bool chinese, r.OptBool(n, path, "handle_chinese_chars", true));
    SPOOL_ASSIGN_OR_RETURN(bool lower, r.OptBool(n, path, "lowercase", true));
    SPOOL_ASSIGN_OR_RETURN(bool strip, r.OptBool(n, path, "strip_accents", lower));
    if (clean != chinese)
      return r.Unsupported(path, "BertNormalizer with clean_text != handle_chinese_chars is not supported");
    if (clean) out.push_back(NormalizerStep::Of(K::kBertClean));
    if (strip) {
      out.push_back(NormalizerStep::Of(K::kNfd));
      out.push_back(NormalizerStep::Of(K::kStripAccents));
    }
    if (lower) out.push_back(NormalizerStep::Of(K::kLowercase));
    return Status::Ok();
  }
  return r.Unsupported(path, "normalizer type '" + type + "' is not supported");
}

Result<SplitBehavior> ParseBehavior(const Reader& r, const Json& obj, const std::string& path, SplitBehavior def) {
  SPOOL_ASSIGN_OR_RETURN(std::string b, r.OptString(obj, path, "behavior", ""));
  if (b.empty()) return def;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  return r.Unsupported(path + ".behavior", "unknown split behavior '" + b + "'");
}

Result<PrependScheme> ParsePrependScheme(const Reader& r, const Json& obj, const std::string& path) {
  auto it = obj.find("prepend_scheme");
  if (it == obj.end() || it->is_null()) {
    SPOOL_ASSIGN_OR_RETURN(bool add, r.OptBool(obj, path, "add_prefix_space", true));
    return add ? PrependScheme::kAlways : PrependScheme::kNever;
  }
  if (!it->is_string()) return r.Error(path + ".prepend_scheme", "expected a string");
  const std::string s = it->get<std::string>();
  if (s == "always") return PrependScheme::kAlways;
  if (s == "first") return PrependScheme::kFirst;
  if (s == "never") return PrependScheme::kNever;
  return r.Unsupported(path + ".prepend_scheme", "unknown prepend_scheme '" + s + "'");
}

Status ParsePreTokenizer(const Reader& r, const Json& p, const std::string& path, std::vector<PreTokenizerStep>& out) {
  if (p.is_null()) return Status::Ok();
  SPOOL_ASSIGN_OR_RETURN(std::string type, TypeOf(r, p, path));
  using K = PreTokenizerStep::Kind;
  PreTokenizerStep step;
  if (type == "Sequence") {
    SPOOL_ASSIGN_OR_RETURN(const Json* list, r.Field(p, path, "pretokenizers"));
    if (!list->is_array()) return r.Error(path + ".pretokenizers", "expected an array");
    for (size_t i = 0; i < list->size(); ++i)
      SPOOL_TRY(ParsePreTokenizer(r, (*list)[i], path + ".pretokenizers[" + std::to_string(i) + "]", out));
    return Status::Ok();
  }
  if (type == "ByteLevel") {
    step.kind = K::kByteLevel;
    SPOOL_ASSIGN_OR_RETURN(step.add_prefix_space, r.OptBool(p, path, "add_prefix_space", true));
    SPOOL_ASSIGN_OR_RETURN(step.use_regex, r.OptBool(p, path, "use_regex", true));
  } else if (type == "Split") {
    step.kind = K::kSplit;
    SPOOL_TRY(r.Pattern(p, path, step.pattern, step.pattern_is_regex));
    SPOOL_ASSIGN_OR_RETURN(step.behavior, ParseBehavior(r, p, path, SplitBehavior::kIsolated));
    SPOOL_ASSIGN_OR_RETURN(step.invert, r.OptBool(p, path, "invert", false));
  } else if (type == "Digits") {
    step.kind = K::kDigits;
    SPOOL_ASSIGN_OR_RETURN(step.individual_digits, r.OptBool(p, path, "individual_digits", false));
  } else if (type == "Metaspace") {
    step.kind = K::kMetaspace;
    SPOOL_ASSIGN_OR_RETURN(step.replacement, r.OptString(p, path, "replacement", "\xE2\x96\x81"));
    if (step.replacement.empty()) return r.Error(path + ".replacement", "must not be empty");
    SPOOL_ASSIGN_OR_RETURN(step.prepend_scheme, ParsePrependScheme(r, p, path));
    SPOOL_ASSIGN_OR_RETURN(step.split, r.OptBool(p, path, "split", true));
  } else if (type == "Whitespace") {
    step.kind = K::kWhitespace;
  } else if (type == "WhitespaceSplit") {
    step.kind = K::kWhitespaceSplit;
  } else if (type == "Punctuation") {
    step.kind = K::kPunctuation;
    SPOOL_ASSIGN_OR_RETURN(step.behavior, ParseBehavior(r, p, path, SplitBehavior::kIsolated));
  } else if (type == "BertPreTokenizer") {
    step.kind = K::kBert;
  } else {
    return r.Unsupported(path, "pre_tokenizer type '" + type + "' is not supported");
  }
  out.push_back(step);
  return Status::Ok();
}

Status ParseDecoder(const Reader& r, const Json& d, const std::string& path, DecoderSpec& out) {
  if (d.is_null()) return Status::Ok();
  SPOOL_ASSIGN_OR_RETURN(std::string type, TypeOf(r, d, path));
  if (type == "Sequence") {
    SPOOL_ASSIGN_OR_RETURN(const Json* list, r.Field(d, path, "decoders"));
    if (!list->is_array()) return r.Error(path + ".decoders", "expected an array");
    for (size_t i = 0; i < list->size(); ++i)
      SPOOL_TRY(ParseDecoder(r, (*list)[i], path + ".decoders[" + std::to_string(i) + "]", out));
    return Status::Ok();
  }
  if (type == "ByteLevel") {
    out.byte_level = true;
  } else if (type == "ByteFallback") {
    out.byte_fallback = true;
  } else if (type == "Fuse") {
    // Concatenation is what Decode does anyway.
  } else if (type == "Metaspace") {
    SPOOL_ASSIGN_OR_RETURN(out.replace_from, r.OptString(d, path, "replacement", "\xE2\x96\x81"));
    out.replace_to = " ";
    SPOOL_ASSIGN_OR_RETURN(PrependScheme scheme, ParsePrependScheme(r, d, path));
    if (scheme != PrependScheme::kNever) out.strip_leading = 1;
  } else if (type == "Replace") {
    std::string pattern;
    bool is_regex = false;
    SPOOL_TRY(r.Pattern(d, path, pattern, is_regex));
    if (is_regex) return r.Unsupported(path, "Replace decoder with a regex pattern is not supported");
    if (!out.replace_from.empty()) return r.Unsupported(path, "more than one Replace decoder is not supported");
    out.replace_from = pattern;
    SPOOL_ASSIGN_OR_RETURN(out.replace_to, r.String(d, path, "content"));
  } else if (type == "Strip") {
    SPOOL_ASSIGN_OR_RETURN(std::string content, r.String(d, path, "content"));
    SPOOL_ASSIGN_OR_RETURN(int64_t start, r.OptInt(d, path, "start", 0));
    SPOOL_ASSIGN_OR_RETURN(int64_t stop, r.OptInt(d, path, "stop", 0));
    if (content != " " || stop != 0 || start < 0 || start > 16)
      return r.Unsupported(path, "only Strip(content=' ', start=0..16, stop=0) is supported");
    out.strip_leading += static_cast<int>(start);
  } else if (type == "WordPiece") {
    SPOOL_ASSIGN_OR_RETURN(out.wordpiece_prefix, r.OptString(d, path, "prefix", "##"));
    if (out.wordpiece_prefix.empty()) return r.Error(path + ".prefix", "must not be empty");
    SPOOL_ASSIGN_OR_RETURN(out.wordpiece_cleanup, r.OptBool(d, path, "cleanup", true));
    out.strip_leading = 1;
  } else {
    return r.Unsupported(path, "decoder type '" + type + "' is not supported");
  }
  return Status::Ok();
}

// Sets tokens[id] = text, growing the table.
Status PlaceToken(const Reader& r, TokenizerSpec& spec, int64_t id, const std::string& text, const std::string& path) {
  if (id < 0 || id >= (1 << 22)) return r.Error(path, "token id " + std::to_string(id) + " is out of range [0, 2^22)");
  if (static_cast<size_t>(id) >= spec.tokens.size()) {
    spec.tokens.resize(static_cast<size_t>(id) + 1);
    spec.types.resize(static_cast<size_t>(id) + 1, TokenType::kUnused);
  }
  spec.tokens[static_cast<size_t>(id)] = text;
  spec.types[static_cast<size_t>(id)] = TokenType::kNormal;
  return Status::Ok();
}

Status ParseModel(const Reader& r, const Json& m, TokenizerSpec& spec) {
  const std::string path = "model";
  if (!m.is_object()) return r.Error(path, "expected an object");
  std::string type;
  if (m.contains("type")) {
    SPOOL_ASSIGN_OR_RETURN(type, r.String(m, path, "type"));
  } else if (m.contains("merges")) {
    type = "BPE";
  } else if (m.contains("vocab") && m["vocab"].is_array()) {
    type = "Unigram";
  } else {
    return r.Error(path, "missing field 'type'");
  }
  SPOOL_ASSIGN_OR_RETURN(const Json* vocab, r.Field(m, path, "vocab"));
  if (type == "BPE" || type == "WordPiece") {
    if (!vocab->is_object()) return r.Error(path + ".vocab", "expected an object {token: id}");
    for (auto it = vocab->begin(); it != vocab->end(); ++it) {
      if (!it.value().is_number_integer()) return r.Error(path + ".vocab['" + it.key() + "']", "expected an integer id");
      SPOOL_TRY(PlaceToken(r, spec, it.value().get<int64_t>(), it.key(), path + ".vocab['" + it.key() + "']"));
    }
    SPOOL_ASSIGN_OR_RETURN(std::string unk, r.OptString(m, path, "unk_token", ""));
    if (!unk.empty()) {
      auto it = vocab->find(unk);
      if (it == vocab->end()) return r.Error(path + ".unk_token", "'" + unk + "' is not in the vocabulary");
      spec.unk_id = it.value().get<int32_t>();
    }
  }
  if (type == "BPE") {
    spec.model = ModelKind::kBpe;
    auto dropout = m.find("dropout");
    if (dropout != m.end() && !dropout->is_null() && !(dropout->is_number() && dropout->get<double>() == 0.0))
      return r.Unsupported(path + ".dropout", "BPE dropout is not supported");
    SPOOL_ASSIGN_OR_RETURN(std::string cont, r.OptString(m, path, "continuing_subword_prefix", ""));
    SPOOL_ASSIGN_OR_RETURN(std::string suffix, r.OptString(m, path, "end_of_word_suffix", ""));
    if (!cont.empty() || !suffix.empty())
      return r.Unsupported(path, "BPE continuing_subword_prefix/end_of_word_suffix are not supported");
    SPOOL_ASSIGN_OR_RETURN(spec.byte_fallback, r.OptBool(m, path, "byte_fallback", false));
    SPOOL_ASSIGN_OR_RETURN(spec.fuse_unk, r.OptBool(m, path, "fuse_unk", false));
    SPOOL_ASSIGN_OR_RETURN(spec.ignore_merges, r.OptBool(m, path, "ignore_merges", false));
    SPOOL_ASSIGN_OR_RETURN(const Json* merges, r.Field(m, path, "merges"));
    if (!merges->is_array()) return r.Error(path + ".merges", "expected an array");
    spec.merges.reserve(merges->size());
    for (size_t i = 0; i < merges->size(); ++i) {
      const Json& e = (*merges)[i];
      const std::string epath = path + ".merges[" + std::to_string(i) + "]";
      if (e.is_string()) {
        const std::string s = e.get<std::string>();
        const size_t space = s.find(' ');
        if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
          return r.Error(epath, "expected \"left right\", got '" + s + "'");
        spec.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
        spec.merges.emplace_back(e[0].get<std::string>(), e[1].get<std::string>());
      } else {
        return r.Error(epath, "expected a string or a pair of strings");
      }
    }
  } else if (type == "WordPiece") {
    spec.model = ModelKind::kWordPiece;
    SPOOL_ASSIGN_OR_RETURN(spec.continuing_subword_prefix, r.OptString(m, path, "continuing_subword_prefix", "##"));
    SPOOL_ASSIGN_OR_RETURN(int64_t max_chars, r.OptInt(m, path, "max_input_chars_per_word", 100));
    if (max_chars < 1 || max_chars > (1 << 30)) return r.Error(path + ".max_input_chars_per_word", "out of range");
    spec.max_input_chars_per_word = static_cast<int>(max_chars);
  } else if (type == "Unigram") {
    spec.model = ModelKind::kUnigram;
    spec.fuse_unk = true;
    if (!vocab->is_array()) return r.Error(path + ".vocab", "expected an array of [piece, score]");
    spec.scores.reserve(vocab->size());
    for (size_t i = 0; i < vocab->size(); ++i) {
      const Json& e = (*vocab)[i];
      if (!e.is_array() || e.size() != 2 || !e[0].is_string() || !e[1].is_number())
        return r.Error(path + ".vocab[" + std::to_string(i) + "]", "expected [piece, score]");
      spec.tokens.push_back(e[0].get<std::string>());
      spec.types.push_back(TokenType::kNormal);
      spec.scores.push_back(e[1].get<double>());
    }
    SPOOL_ASSIGN_OR_RETURN(int64_t unk, r.OptInt(m, path, "unk_id", -1));
    if (unk < -1 || unk >= static_cast<int64_t>(spec.tokens.size()))
      return r.Error(path + ".unk_id", std::to_string(unk) + " is out of range");
    spec.unk_id = static_cast<int32_t>(unk);
    SPOOL_ASSIGN_OR_RETURN(spec.byte_fallback, r.OptBool(m, path, "byte_fallback", false));
  } else {
    return r.Unsupported(path + ".type", "model type '" + type + "' is not supported (BPE, Unigram, WordPiece)");
  }
  return Status::Ok();
}

// Post-processor: ids before and after a single sequence.
Status ParsePostProcessor(const Reader& r, const Json& p, const std::string& path, TokenizerSpec& spec) {
  if (p.is_null()) return Status::Ok();
  SPOOL_ASSIGN_OR_RETURN(std::string type, TypeOf(r, p, path));
  if (type == "Sequence") {
    SPOOL_ASSIGN_OR_RETURN(const Json* list, r.Field(p, path, "processors"));
    if (!list->is_array()) return r.Error(path + ".processors", "expected an array");
    for (size_t i = 0; i < list->size(); ++i)
      SPOOL_TRY(ParsePostProcessor(r, (*list)[i], path + ".processors[" + std::to_string(i) + "]", spec));
    return Status::Ok();
  }
  if (type == "ByteLevel") return Status::Ok();  // only adjusts offsets
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    for (const char* key : {"cls", "sep"}) {
      SPOOL_ASSIGN_OR_RETURN(const Json* v, r.Field(p, path, key));
      if (!v->is_array() || v->size() != 2 || !(*v)[1].is_number_integer())
        return r.Error(path + "." + key, "expected [token, id]");
      (std::string(key) == "cls" ? spec.prefix_ids : spec.suffix_ids).push_back((*v)[1].get<int32_t>());
    }
    return Status::Ok();
  }
  if (type != "TemplateProcessing") return r.Unsupported(path, "post_processor type '" + type + "' is not supported");
  SPOOL_ASSIGN_OR_RETURN(const Json* single, r.Field(p, path, "single"));
  SPOOL_ASSIGN_OR_RETURN(const Json* specials, r.Field(p, path, "special_tokens"));
  if (!single->is_array()) return r.Error(path + ".single", "expected an array");
  if (!specials->is_object()) return r.Error(path + ".special_tokens", "expected an object");
  bool seen_sequence = false;
  for (size_t i = 0; i < single->size(); ++i) {
    const Json& piece = (*single)[i];
    const std::string ppath = path + ".single[" + std::to_string(i) + "]";
    if (piece.is_object() && piece.contains("Sequence")) {
      seen_sequence = true;
      continue;
    }
    if (!piece.is_object() || !piece.contains("SpecialToken") || !piece["SpecialToken"].is_object())
      return r.Error(ppath, "expected {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    SPOOL_ASSIGN_OR_RETURN(std::string name, r.String(piece["SpecialToken"], ppath + ".SpecialToken", "id"));
    auto it = specials->find(name);
    if (it == specials->end()) return r.Error(path + ".special_tokens", "no entry for '" + name + "'");
    SPOOL_ASSIGN_OR_RETURN(const Json* ids, r.Field(*it, path + ".special_tokens['" + name + "']", "ids"));
    if (!ids->is_array()) return r.Error(path + ".special_tokens['" + name + "'].ids", "expected an array");
    for (const Json& id : *ids) {
      if (!id.is_number_integer()) return r.Error(path + ".special_tokens['" + name + "'].ids", "expected integers");
      (seen_sequence ? spec.suffix_ids : spec.prefix_ids).push_back(id.get<int32_t>());
    }
  }
  return Status::Ok();
}

// tokenizer_config.json tokens may be "text" or {"content": "text", ...}.
std::string ConfigTokenText(const Json& config, const char* key) {
  auto it = config.find(key);
  if (it == config.end()) return "";
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object() && it->contains("content") && (*it)["content"].is_string()) return (*it)["content"].get<std::string>();
  return "";
}

}  // namespace

Result<TokenizerSpec> SpecFromJson(const std::string& tokenizer_json_text, const std::string& config_json_text,
                                   const std::string& source_name) {
  Reader r(source_name);
  Json root = Json::parse(tokenizer_json_text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) return InvalidFile(source_name + ": not valid JSON");
  if (!root.is_object()) return InvalidFile(source_name + ": expected a JSON object at the top level");
  TokenizerSpec spec;
  spec.source = source_name;
  SPOOL_ASSIGN_OR_RETURN(const Json* model, r.Field(root, "(root)", "model"));
  SPOOL_TRY(ParseModel(r, *model, spec));

  auto added = root.find("added_tokens");
  if (added != root.end() && !added->is_null()) {
    if (!added->is_array()) return r.Error("added_tokens", "expected an array");
    for (size_t i = 0; i < added->size(); ++i) {
      const Json& t = (*added)[i];
      const std::string path = "added_tokens[" + std::to_string(i) + "]";
      AddedToken a;
      SPOOL_ASSIGN_OR_RETURN(const Json* id, r.Field(t, path, "id"));
      if (!id->is_number_integer()) return r.Error(path + ".id", "expected an integer");
      const int64_t id64 = id->get<int64_t>();
      SPOOL_ASSIGN_OR_RETURN(a.content, r.String(t, path, "content"));
      SPOOL_ASSIGN_OR_RETURN(a.special, r.OptBool(t, path, "special", false));
      SPOOL_ASSIGN_OR_RETURN(a.lstrip, r.OptBool(t, path, "lstrip", false));
      SPOOL_ASSIGN_OR_RETURN(a.rstrip, r.OptBool(t, path, "rstrip", false));
      SPOOL_ASSIGN_OR_RETURN(a.single_word, r.OptBool(t, path, "single_word", false));
      if (id64 < 0 || id64 >= (1 << 22)) return r.Error(path + ".id", std::to_string(id64) + " is out of range [0, 2^22)");
      const size_t idx = static_cast<size_t>(id64);
      if (idx >= spec.tokens.size() || spec.tokens[idx] != a.content) {
        if (idx < spec.tokens.size() && spec.types[idx] != TokenType::kUnused && spec.model != ModelKind::kUnigram &&
            !spec.tokens[idx].empty())
          return r.Error(path, "id " + std::to_string(id64) + " is '" + spec.tokens[idx] + "' in the model vocabulary, not '" +
                                   a.content + "'");
        if (idx >= spec.tokens.size()) {
          spec.tokens.resize(idx + 1);
          spec.types.resize(idx + 1, TokenType::kUnused);
          if (!spec.scores.empty()) spec.scores.resize(idx + 1, 0.0);
        }
        spec.tokens[idx] = a.content;
      }
      spec.types[idx] = a.special ? TokenType::kControl : TokenType::kUserDefined;
      a.id = static_cast<int32_t>(id64);
      spec.added_tokens.push_back(std::move(a));
    }
  }
  for (size_t i = 0; i < spec.tokens.size(); ++i)
    if (spec.types[i] == TokenType::kUnused && spec.tokens[i].empty())
      return r.Error("model.vocab", "no token has id " + std::to_string(i) + " (ids must be contiguous)");
  if (spec.model == ModelKind::kUnigram && spec.scores.size() != spec.tokens.size())
    spec.scores.resize(spec.tokens.size(), 0.0);
  if (spec.unk_id >= 0 && static_cast<size_t>(spec.unk_id) < spec.types.size() &&
      spec.types[static_cast<size_t>(spec.unk_id)] == TokenType::kNormal)
    spec.types[static_cast<size_t>(spec.unk_id)] = TokenType::kUnknown;
  for (size_t i = 0; i < spec.tokens.size(); ++i)
    if (spec.types[i] == TokenType::kNormal && spec.tokens[i].size() == 6 && spec.tokens[i].compare(0, 3, "<0x") == 0 &&
        spec.byte_fallback)
      spec.types[i] = TokenType::kByte;

  auto field_or_null = [&](const char* key) -> const Json& {
    static const Json kNull;
    auto it = root.find(key);
    return it == root.end() ? kNull : *it;
  };
  SPOOL_TRY(ParseNormalizer(r, field_or_null("normalizer"), "normalizer", spec.normalizer));
  SPOOL_TRY(ParsePreTokenizer(r, field_or_null("pre_tokenizer"), "pre_tokenizer", spec.pre_tokenizer));
  SPOOL_TRY(ParsePostProcessor(r, field_or_null("post_processor"), "post_processor", spec));
  SPOOL_TRY(ParseDecoder(r, field_or_null("decoder"), "decoder", spec.decoder));

  auto find = [&](const std::string& text) -> int32_t {
    if (text.empty()) return -1;
    for (size_t i = 0; i < spec.tokens.size(); ++i)
      if (spec.tokens[i] == text) return static_cast<int32_t>(i);
    return -1;
  };
  // BOS/EOS: tokenizer_config.json names them; otherwise the post-processor's
  // first prefix token and the usual end-of-text names.
  Json config;
  if (!config_json_text.empty()) {
    config = Json::parse(config_json_text, nullptr, false);
    if (config.is_discarded() || !config.is_object())
      return InvalidFile(source_name + ": tokenizer_config.json is not a JSON object");
  }
  spec.bos_id = find(ConfigTokenText(config, "bos_token"));
  spec.eos_id = find(ConfigTokenText(config, "eos_token"));
  if (spec.bos_id < 0 && !spec.prefix_ids.empty()) spec.bos_id = spec.prefix_ids.front();
  if (spec.bos_id < 0)
    for (const char* t : {"<s>", "<|begin_of_text|>", "<bos>", "[CLS]"})
      if ((spec.bos_id = find(t)) >= 0) break;
  if (spec.eos_id < 0 && !spec.suffix_ids.empty()) spec.eos_id = spec.suffix_ids.back();
  if (spec.eos_id < 0)
    for (const char* t : {"</s>", "<|endoftext|>", "<|end_of_text|>", "<eos>", "[SEP]"})
      if ((spec.eos_id = find(t)) >= 0) break;
  if (config.is_object()) {
    auto add_bos = config.find("add_bos_token");
    if (add_bos != config.end() && add_bos->is_boolean()) {
      spec.prefix_ids.clear();
      if (add_bos->get<bool>() && spec.bos_id >= 0) spec.prefix_ids.push_back(spec.bos_id);
    }
    auto add_eos = config.find("add_eos_token");
    if (add_eos != config.end() && add_eos->is_boolean()) {
      spec.suffix_ids.clear();
      if (add_eos->get<bool>() && spec.eos_id >= 0) spec.suffix_ids.push_back(spec.eos_id);
    }
  }
  return spec;
}

Result<std::unique_ptr<Tokenizer>> LoadTokenizerFromJson(const std::string& tokenizer_json_path,
                                                         const std::string& config_json_path) {
  SPOOL_ASSIGN_OR_RETURN(std::string text, ReadFileToString(tokenizer_json_path));
  std::string config;
  if (!config_json_path.empty()) {
    SPOOL_ASSIGN_OR_RETURN(config, ReadFileToString(config_json_path));
  }
  SPOOL_ASSIGN_OR_RETURN(TokenizerSpec spec, SpecFromJson(text, config, tokenizer_json_path));
  return Tokenizer::Create(std::move(spec));
}

}  // namespace spool::tokenizer

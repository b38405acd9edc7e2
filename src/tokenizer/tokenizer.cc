#include "tokenizer/tokenizer.h"

#include <cstdio>
#include <unordered_map>

#include "tokenizer/added_tokens.h"
#include "tokenizer/model.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace spool::tokenizer {
namespace {

// Vocabulary texts that end generation when they are special tokens (llama.cpp
// and HF generation configs use the same list of chat end markers).
const char* const kEndOfGenerationTexts[] = {
    "<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
    "<EOT>", "<|end_of_text|>", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "<|return|>",
};

// "<0xAB>" -> 0xAB, or -1.
int ParseByteToken(const std::string& text) {
  if (text.size() != 6 || text.compare(0, 3, "<0x") != 0 || text[5] != '>') return -1;
  int value = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = text[static_cast<size_t>(i)];
    int digit = (c >= '0' && c <= '9') ? c - '0' : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
    if (digit < 0) return -1;
    value = value * 16 + digit;
  }
  return value;
}

std::string ReplaceAll(std::string text, const std::string& from, const std::string& to) {
  if (from.empty()) return text;
  size_t pos = 0;
  while ((pos = text.find(from, pos)) != std::string::npos) {
    text.replace(pos, from.size(), to);
    pos += to.size();
  }
  return text;
}

// True if every piece is "▁"* followed by text without "▁".
bool SpmCanSplitAtSpaces(const std::vector<std::string>& tokens) {
  static const std::string kSpace = "\xE2\x96\x81";
  for (const std::string& t : tokens) {
    size_t pos = 0;
    while (t.compare(pos, kSpace.size(), kSpace) == 0) pos += kSpace.size();
    if (t.find(kSpace, pos) != std::string::npos) return false;
  }
  return true;
}

using WordCache = std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>>;

}  // namespace

// The vocabulary lookup lives with the model so that VocabView stays valid.
class TokenizerTables {
 public:
  TokenMap token_to_id;
};

Tokenizer::Tokenizer(TokenizerSpec spec) : spec_(std::move(spec)) {}
Tokenizer::~Tokenizer() = default;

Result<std::unique_ptr<Tokenizer>> Tokenizer::Create(TokenizerSpec spec) {
  std::unique_ptr<Tokenizer> tok(new Tokenizer(std::move(spec)));
  SPOOL_TRY(tok->Init());
  return tok;
}

Status Tokenizer::Init() {
  const std::string& src = spec_.source;
  const size_t n = spec_.tokens.size();
  if (n == 0) return InvalidFile(src + ": the vocabulary is empty");
  if (n > static_cast<size_t>(INT32_MAX)) return InvalidFile(src + ": too many tokens");
  if (!spec_.types.empty() && spec_.types.size() != n)
    return InvalidFile(src + ": token types has " + std::to_string(spec_.types.size()) +
                       " entries, expected one per token (" + std::to_string(n) + ")");
  if (!spec_.scores.empty() && spec_.scores.size() != n)
    return InvalidFile(src + ": scores has " + std::to_string(spec_.scores.size()) +
                       " entries, expected one per token (" + std::to_string(n) + ")");
  if (spec_.types.empty()) spec_.types.assign(n, TokenType::kNormal);
  auto check_id = [&](int32_t id, const std::string& what, bool optional) -> Status {
    if ((optional && id == -1) || (id >= 0 && static_cast<size_t>(id) < n)) return Status::Ok();
    return InvalidFile(src + ": " + what + " = " + std::to_string(id) + " is out of range [0, " + std::to_string(n) +
                       ")");
  };
  SPOOL_TRY(check_id(spec_.bos_id, "bos token id", true));
  SPOOL_TRY(check_id(spec_.eos_id, "eos token id", true));
  SPOOL_TRY(check_id(spec_.unk_id, "unknown token id", true));
  for (int32_t id : spec_.prefix_ids) SPOOL_TRY(check_id(id, "post-processor token id", false));
  for (int32_t id : spec_.suffix_ids) SPOOL_TRY(check_id(id, "post-processor token id", false));
  for (int32_t id : spec_.extra_eos_ids) SPOOL_TRY(check_id(id, "end-of-generation token id", false));
  for (const AddedToken& t : spec_.added_tokens) {
    SPOOL_TRY(check_id(t.id, "added token '" + t.content + "' id", false));
    if (FindInvalidUtf8(t.content) != t.content.size())
      return InvalidFile(src + ": added token " + std::to_string(t.id) + " is not valid UTF-8");
  }

  tables_ = std::make_unique<TokenizerTables>();
  tables_->token_to_id.reserve(n * 2);
  VocabView view;
  view.spec = &spec_;
  view.token_to_id = &tables_->token_to_id;
  view.byte_ids.fill(-1);
  for (size_t i = 0; i < n; ++i) {
    tables_->token_to_id[spec_.tokens[i]] = static_cast<int32_t>(i);  // last wins, as llama.cpp
    const int byte = ParseByteToken(spec_.tokens[i]);
    if (byte >= 0 && view.byte_ids[static_cast<size_t>(byte)] < 0) view.byte_ids[static_cast<size_t>(byte)] = static_cast<int32_t>(i);
  }
  SPOOL_ASSIGN_OR_RETURN(model_, CreateModel(view));
  SPOOL_ASSIGN_OR_RETURN(normalizer_, Normalizer::Create(spec_.normalizer));
  std::vector<PreTokenizerStep> pre_steps = spec_.pre_tokenizer;
  if (spec_.model == ModelKind::kSpm && pre_steps.empty() && SpmCanSplitAtSpaces(spec_.tokens)) {
    // Speed: cut the segment before each run of "▁" so that words are encoded
    // (and cached) separately. Exact, because no piece has "▁" after another
    // character, so no merge can cross such a cut.
    PreTokenizerStep cut;
    cut.kind = PreTokenizerStep::Kind::kSplit;
    cut.pattern = R"(\x{2581}*[^\x{2581}]+|\x{2581}+)";
    pre_steps.push_back(cut);
  }
  SPOOL_ASSIGN_OR_RETURN(pre_tokenizer_, PreTokenizer::Create(pre_steps));
  added_ = std::make_unique<AddedTokenMatcher>(spec_.added_tokens);

  // Decoded bytes of every token.
  const DecoderSpec& d = spec_.decoder;
  pieces_.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = spec_.tokens[i];
    std::string piece;
    const int byte = d.byte_fallback ? ParseByteToken(text) : -1;
    const TokenType type = spec_.types[i];
    if (type == TokenType::kUserDefined || type == TokenType::kControl) {
      piece = text;  // added tokens are literal text (llama.cpp token_to_piece)
    } else if (byte >= 0) {
      piece.assign(1, static_cast<char>(byte));
    } else if (d.byte_level) {
      // HF ByteLevel decoder: a token whose chars are all in the byte alphabet
      // maps back to bytes; any other token is kept as its UTF-8 text.
      piece = ByteLevelDecode(text);
      if (ByteLevelEncode(piece) != text) piece = text;
    } else {
      piece = text;
    }
    if (!d.replace_from.empty()) piece = ReplaceAll(std::move(piece), d.replace_from, d.replace_to);
    if (!d.wordpiece_prefix.empty()) {
      if (piece.compare(0, d.wordpiece_prefix.size(), d.wordpiece_prefix) == 0) {
        piece.erase(0, d.wordpiece_prefix.size());
      } else {
        piece.insert(piece.begin(), ' ');
      }
      if (d.wordpiece_cleanup) {
        // HF's per-token cleanup of tokenisation spaces.
        for (const auto& [from, to] : std::initializer_list<std::pair<const char*, const char*>>{
                 {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"}, {" 'm", "'m"},
                 {" do not", " don't"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}})
          piece = ReplaceAll(std::move(piece), from, to);
      }
    }
    pieces_[i] = std::move(piece);
  }

  if (spec_.eos_id >= 0) eos_ids_.insert(spec_.eos_id);
  for (int32_t id : spec_.extra_eos_ids) eos_ids_.insert(id);
  for (const char* text : kEndOfGenerationTexts) {
    const int32_t id = FindToken(text);
    if (id >= 0 && spec_.types[static_cast<size_t>(id)] != TokenType::kNormal) eos_ids_.insert(id);
  }
  // gpt-oss (o200k_harmony): <|end|> closes a message but not the answer (the final
  // message follows the analysis one); the answer ends at <|return|>, a tool call at
  // <|call|>. llama.cpp's vocabulary does the same for this pair.
  const int32_t ret = FindToken("<|return|>"), call = FindToken("<|call|>");
  if (ret >= 0 && call >= 0 && spec_.types[static_cast<size_t>(call)] != TokenType::kNormal) {
    eos_ids_.insert(call);
    if (const int32_t end = FindToken("<|end|>"); end >= 0 && end != spec_.eos_id) eos_ids_.erase(end);
  }
  return Status::Ok();
}

bool Tokenizer::IsControl(int32_t id) const { return GetTokenType(id) == TokenType::kControl; }

TokenType Tokenizer::GetTokenType(int32_t id) const {
  if (id < 0 || id >= n_vocab()) return TokenType::kUndefined;
  return spec_.types[static_cast<size_t>(id)];
}

const std::string& Tokenizer::TokenText(int32_t id) const {
  static const std::string kEmpty;
  if (id < 0 || id >= n_vocab()) return kEmpty;
  return spec_.tokens[static_cast<size_t>(id)];
}

const std::string& Tokenizer::TokenToPiece(int32_t id) const {
  static const std::string kEmpty;
  if (id < 0 || id >= n_vocab()) return kEmpty;
  return pieces_[static_cast<size_t>(id)];
}

int32_t Tokenizer::FindToken(std::string_view text) const {
  auto it = tables_->token_to_id.find(text);
  return it == tables_->token_to_id.end() ? -1 : it->second;
}

Result<std::vector<int32_t>> Tokenizer::Encode(std::string_view text, bool add_special, bool parse_special) const {
  return EncodeImpl(text, add_special, parse_special, {});
}

Result<std::vector<int32_t>> Tokenizer::EncodeWithLiteralSpans(std::string_view text, bool add_special,
                                                               std::span<const ByteSpan> literal) const {
  for (size_t i = 0; i < literal.size(); ++i) {
    if (literal[i].begin > literal[i].end || literal[i].end > text.size() || (i > 0 && literal[i].begin < literal[i - 1].end))
      return InvalidArgument("literal spans must be sorted, non-overlapping ranges inside the text");
  }
  return EncodeImpl(text, add_special, /*parse_special=*/true, literal);
}

Result<std::vector<int32_t>> Tokenizer::EncodeImpl(std::string_view text, bool add_special, bool parse_special,
                                                   std::span<const ByteSpan> literal) const {
  const size_t bad = FindInvalidUtf8(text);
  if (bad != text.size()) {
    char hex[8];
    std::snprintf(hex, sizeof(hex), "0x%02X", static_cast<unsigned>(static_cast<uint8_t>(text[bad])));
    return InvalidArgument("text is not valid UTF-8: bad byte " + std::string(hex) + " at offset " +
                           std::to_string(bad) + " of " + std::to_string(text.size()));
  }
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 4);
  if (add_special) ids.insert(ids.end(), spec_.prefix_ids.begin(), spec_.prefix_ids.end());
  WordCache cache;
  std::string normalized;
  std::vector<std::string> words;
  for (const Fragment& f : added_->Split(text, parse_special, literal)) {
    if (f.id >= 0) {
      ids.push_back(f.id);
      continue;
    }
    const std::string_view segment = text.substr(f.begin, f.end - f.begin);
    if (normalizer_->empty()) {
      normalized.assign(segment);
    } else {
      SPOOL_ASSIGN_OR_RETURN(normalized, normalizer_->Apply(segment));
    }
    SPOOL_TRY(pre_tokenizer_->Run(normalized, f.begin == 0, words));
    for (const std::string& word : words) {
      if (word.empty()) continue;
      if (word.size() > 256) {  // long words (whole SPM segments, whitespace runs): no caching
        model_->Encode(word, ids);
        continue;
      }
      auto it = cache.find(word);
      if (it == cache.end()) {
        std::vector<int32_t> word_ids;
        model_->Encode(word, word_ids);
        it = cache.emplace(word, std::move(word_ids)).first;
      }
      ids.insert(ids.end(), it->second.begin(), it->second.end());
    }
  }
  if (add_special) ids.insert(ids.end(), spec_.suffix_ids.begin(), spec_.suffix_ids.end());
  return ids;
}

Result<std::string> Tokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special) const {
  StreamingDecoder decoder(*this, skip_special);
  std::string out;
  for (int32_t id : ids) {
    SPOOL_ASSIGN_OR_RETURN(std::string chunk, decoder.Push(id));
    out += chunk;
  }
  out += decoder.Flush();
  return out;
}

Result<std::string> StreamingDecoder::Push(int32_t id) {
  if (id < 0 || id >= tok_.n_vocab())
    return InvalidArgument("token id " + std::to_string(id) + " is out of range [0, " +
                           std::to_string(tok_.n_vocab()) + ")");
  if (skip_special_ && tok_.IsControl(id)) return std::string();
  std::string_view piece = tok_.TokenToPiece(id);
  if (leading_to_strip_ < 0) leading_to_strip_ = tok_.spec().decoder.strip_leading;
  // Strip the decoder's leading spaces from the very start of the output.
  while (leading_to_strip_ > 0 && pending_.empty() && !piece.empty()) {
    if (piece[0] != ' ') {
      leading_to_strip_ = 0;
      break;
    }
    piece.remove_prefix(1);
    --leading_to_strip_;
  }
  if (!piece.empty()) leading_to_strip_ = 0;
  pending_.append(piece);
  const size_t ready = StreamablePrefix(pending_);
  std::string chunk = LossyUtf8(std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return chunk;
}

std::string StreamingDecoder::Flush() {
  std::string rest = LossyUtf8(pending_);
  pending_.clear();
  leading_to_strip_ = at_sequence_start_ ? -1 : 0;
  return rest;
}

}  // namespace spool::tokenizer

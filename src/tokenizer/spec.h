// The in-memory description of a tokenizer: everything needed to encode and
// decode, independent of the file it came from. Loaders (load_gguf.cc,
// load_json.cc) fill a TokenizerSpec; Tokenizer::Create validates it and builds
// the lookup structures. Tests may build one by hand.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace spool::tokenizer {

// A byte range [begin, end) of an input text.
struct ByteSpan {
  size_t begin = 0, end = 0;
};


// Numbering follows GGUF's tokenizer.ggml.token_type (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,      // BOS/EOS/chat markers: matched in text only with parse_special
  kUserDefined = 4,  // always matched in text before the model runs
  kUnused = 5,
  kByte = 6,         // "<0xAB>": one raw byte (byte fallback)
};

enum class ModelKind {
  kBpe,        // merges by rank (GPT-2 / HF BPE); byte-level or with byte fallback
  kSpm,        // SentencePiece BPE by piece score (GGUF "llama")
  kUnigram,    // Viterbi over piece log-probabilities
  kWordPiece,  // greedy longest match (BERT)
};

// One step of text normalisation, applied in order to each text segment
// (the text between two matched added tokens).
struct NormalizerStep {
  enum class Kind {
    kNfc, kNfkc, kNfd, kNfkd,
    kLowercase,
    kStripAccents,   // drop combining marks (Mn); use after kNfd
    kPrepend,        // content before a non-empty segment
    kReplace,        // pattern (literal or regex) -> content
    kStrip,          // strip whitespace on the left/right
    kBertClean,      // BERT: drop control chars, map whitespace to ' ', pad CJK with spaces
  };
  Kind kind = Kind::kNfc;
  std::string pattern;       // kReplace
  bool pattern_is_regex = false;
  std::string content;       // kPrepend, kReplace
  bool left = true, right = true;  // kStrip

  static NormalizerStep Of(Kind kind) {
    NormalizerStep step;
    step.kind = kind;
    return step;
  }
};

// How a split keeps the delimiters (Hugging Face SplitDelimiterBehavior).
enum class SplitBehavior { kIsolated, kRemoved, kMergedWithPrevious, kMergedWithNext, kContiguous };

enum class PrependScheme { kAlways, kFirst, kNever };

// One pre-tokenisation step; each step refines the current list of pieces.
struct PreTokenizerStep {
  enum class Kind {
    kSplit,            // regex (PCRE2, UTF+UCP) or literal pattern
    kByteLevel,        // optional prefix space, optional GPT-2 regex split, bytes -> printable chars
    kDigits,           // split on \p{N} (individual or contiguous)
    kMetaspace,        // ' ' -> replacement, optional prepend, optional split before replacement
    kWhitespace,       // \w+|[^\w\s]+
    kWhitespaceSplit,  // split on whitespace, drop it
    kPunctuation,      // split on punctuation chars
    kBert,             // whitespace split + isolated punctuation
  };
  Kind kind = Kind::kSplit;
  std::string pattern;                 // kSplit
  bool pattern_is_regex = true;        // kSplit
  bool invert = false;                 // kSplit
  SplitBehavior behavior = SplitBehavior::kIsolated;  // kSplit, kPunctuation
  bool add_prefix_space = false;       // kByteLevel
  bool use_regex = true;               // kByteLevel
  bool individual_digits = false;      // kDigits
  std::string replacement = "\xE2\x96\x81";  // kMetaspace ("▁")
  PrependScheme prepend_scheme = PrependScheme::kAlways;  // kMetaspace
  bool split = true;                   // kMetaspace
};

// How ids become text. Decoding is per token (so that streaming works): each
// token maps to a byte string, then the concatenation gets `strip_leading`
// leading spaces removed.
struct DecoderSpec {
  bool byte_level = false;         // token chars map back to bytes (GPT-2 byte encoder)
  bool byte_fallback = false;      // "<0xAB>" tokens decode to the byte 0xAB
  std::string replace_from;        // e.g. "▁" (Metaspace / Replace decoders)
  std::string replace_to;          // e.g. " "
  int strip_leading = 0;           // spaces removed from the start of the output
  std::string wordpiece_prefix;    // non-empty: WordPiece decoder ("##"): others get a space
  bool wordpiece_cleanup = false;  // HF cleanup: " ." -> ".", " n't" -> "n't", ...
};

// An added token: matched in the raw text before normalisation and the model.
// `special` tokens are matched only when Encode's parse_special is true.
struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool special = false;
  bool lstrip = false, rstrip = false, single_word = false;
};

struct TokenizerSpec {
  std::string source;               // file name, for error messages
  ModelKind model = ModelKind::kBpe;

  // The vocabulary: tokens[i] is the text of id i in the model's own alphabet
  // (byte-level chars for BPE, "▁" for spaces in SentencePiece).
  std::vector<std::string> tokens;
  std::vector<double> scores;       // kSpm, kUnigram: one per token (may be empty otherwise)
  std::vector<TokenType> types;     // one per token (empty: all kNormal)
  std::vector<std::pair<std::string, std::string>> merges;  // kBpe, in rank order

  // Model options.
  bool byte_fallback = false;       // unknown chars -> "<0xAB>" tokens
  bool ignore_merges = false;       // BPE: a whole pre-token found in the vocab is emitted as is
  bool fuse_unk = false;            // consecutive unknowns become one unk token
  std::string continuing_subword_prefix;  // WordPiece "##" (HF); empty for GGUF BERT
  std::string word_prefix;          // WordPiece: prefix of a word-initial piece ("▁" for GGUF BERT)
  int max_input_chars_per_word = 100;  // WordPiece

  std::vector<NormalizerStep> normalizer;
  std::vector<PreTokenizerStep> pre_tokenizer;

  std::vector<AddedToken> added_tokens;

  // Post-processing (Encode with add_special): ids around the sequence.
  std::vector<int32_t> prefix_ids;  // e.g. {bos}
  std::vector<int32_t> suffix_ids;  // e.g. {eos}

  int32_t bos_id = -1, eos_id = -1, unk_id = -1;
  std::vector<int32_t> extra_eos_ids;  // eot/eom/im_end-style end-of-generation tokens

  DecoderSpec decoder;
};

}  // namespace spool::tokenizer

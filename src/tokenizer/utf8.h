// UTF-8 helpers for the tokenizer: validation, code points, lossy repair, and the
// GPT-2 byte <-> printable-character map used by byte-level BPE.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace spool::tokenizer {

// Result of looking at the UTF-8 sequence that starts at one position.
enum class Utf8Scan {
  kValid,      // `length` bytes form one valid character
  kInvalid,    // `length` bytes (the maximal invalid subpart, >= 1) never form a character
  kTruncated,  // the buffer ends inside a sequence that is valid so far (`length` bytes)
};
Utf8Scan ScanUtf8(std::string_view s, size_t pos, size_t* length);

// Returns s.size() if `s` is valid UTF-8, else the offset of the first bad byte.
size_t FindInvalidUtf8(std::string_view s);

// Decodes the character at `pos` (must be valid) and advances `pos`.
uint32_t NextCodepoint(std::string_view s, size_t& pos);
void AppendUtf8(std::string& out, uint32_t cp);
std::vector<uint32_t> ToCodepoints(std::string_view s);  // s must be valid
std::string FromCodepoints(const std::vector<uint32_t>& cps);

// Replaces each maximal invalid subpart by U+FFFD (like Rust from_utf8_lossy).
// A truncated sequence at the end also becomes U+FFFD.
std::string LossyUtf8(std::string_view s);
// Length of the longest prefix that does not end inside a truncated sequence
// (what a streaming decoder may emit now).
size_t StreamablePrefix(std::string_view s);

// GPT-2 byte-level alphabet: byte b <-> one printable code point (as UTF-8).
const std::array<std::string, 256>& ByteToUnicode();
// Maps every byte of `bytes` to its printable char.
std::string ByteLevelEncode(std::string_view bytes);
// Inverse of ByteLevelEncode; chars outside the alphabet are kept as their UTF-8.
std::string ByteLevelDecode(std::string_view text);

// Unicode classes used by pre-tokenisers and normalisers (utf8proc tables).
bool IsWhitespace(uint32_t cp);    // White_Space property (+ \t\n\r)
bool IsPunctuation(uint32_t cp);   // general category P*, or ASCII punctuation/symbol
bool IsNumeric(uint32_t cp);       // N*
bool IsLetter(uint32_t cp);        // L*
bool IsMark(uint32_t cp);          // M*
bool IsNonspacingMark(uint32_t cp);  // Mn
bool IsOther(uint32_t cp);         // C* (control, format, unassigned, private use, surrogate)
bool IsCjk(uint32_t cp);           // BERT's "Chinese character" ranges
uint32_t ToLower(uint32_t cp);

}  // namespace spool::tokenizer

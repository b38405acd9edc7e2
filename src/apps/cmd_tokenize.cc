// spool tokenize MODEL (--text T | --file F) [--add-special] [--parse-special] [--json]
// spool detokenize MODEL --ids 1,2,3 [--skip-special] [--json]
// MODEL: a .gguf file (a vocabulary-only GGUF is enough), a tokenizer.json, or a
// Hugging Face folder with tokenizer.json.
#include <cstdio>

#include <nlohmann/json.hpp>

#include "apps/command.h"
#include "apps/common_flags.h"
#include "base/strings.h"
#include "tokenizer/tokenizer.h"

namespace spool::apps {
namespace {

// Printable form of a piece for the plain (non-JSON) listing.
std::string Escape(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\\' || c == '\'') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02X", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

int RunTokenize(int argc, char** argv) {
  ArgParser p("spool tokenize", "MODEL (--text T | --file F)");
  std::string& text_flag = p.String("--text", "", "text to tokenize");
  std::string& file_flag = p.String("--file", "", "file whose contents to tokenize");
  bool& add_special = p.Flag("--add-special", "add the model's BOS/EOS tokens");
  bool& parse_special = p.Flag("--parse-special", "turn special-token text (e.g. <|im_end|>) into those tokens");
  bool& json = p.Flag("--json", "print {\"ids\":[...]}");
  int code;
  if (HandleParse(p, argc, argv, &code)) return code;
  if (p.positional().size() != 1 || (p.Given("--text") == p.Given("--file"))) {
    std::fprintf(stderr, "spool tokenize: give MODEL and exactly one of --text or --file\n%s", p.Usage().c_str());
    return 2;
  }
  std::string text = text_flag;
  if (p.Given("--file")) {
    auto contents = ReadFileToString(file_flag);
    if (!contents.ok()) return Fail(contents.status().message());
    text = std::move(contents).value();
  }
  auto tok = tokenizer::LoadTokenizer(p.positional()[0]);
  if (!tok.ok()) return Fail(tok.status().message());
  auto ids = (*tok)->Encode(text, add_special, parse_special);
  if (!ids.ok()) return Fail(ids.status().message());
  if (json) {
    std::printf("%s\n", nlohmann::json{{"ids", *ids}}.dump().c_str());
    return 0;
  }
  for (int32_t id : *ids) std::printf("%6d '%s'\n", id, Escape((*tok)->TokenToPiece(id)).c_str());
  return 0;
}

int RunDetokenize(int argc, char** argv) {
  ArgParser p("spool detokenize", "MODEL --ids 1,2,3");
  std::string& ids_flag = p.String("--ids", "", "comma-separated token ids");
  bool& skip_special = p.Flag("--skip-special", "leave out control tokens (BOS, EOS, ...)");
  bool& json = p.Flag("--json", "print {\"text\":\"...\"}");
  int code;
  if (HandleParse(p, argc, argv, &code)) return code;
  if (p.positional().size() != 1 || !p.Given("--ids")) {
    std::fprintf(stderr, "spool detokenize: give MODEL and --ids\n%s", p.Usage().c_str());
    return 2;
  }
  std::vector<int32_t> ids;
  for (const std::string& part : Split(ids_flag, ',')) {
    if (part.empty()) continue;
    char* end = nullptr;
    const long long v = std::strtoll(part.c_str(), &end, 10);
    if (*end != '\0' || v < INT32_MIN || v > INT32_MAX) {
      std::fprintf(stderr, "spool detokenize: --ids: '%s' is not an integer\n", part.c_str());
      return 2;
    }
    ids.push_back(static_cast<int32_t>(v));
  }
  auto tok = tokenizer::LoadTokenizer(p.positional()[0]);
  if (!tok.ok()) return Fail(tok.status().message());
  auto text = (*tok)->Decode(ids, skip_special);
  if (!text.ok()) return Fail(text.status().message());
  if (json) {
    std::printf("%s\n", nlohmann::json{{"text", *text}}.dump().c_str());
  } else {
    std::fwrite(text->data(), 1, text->size(), stdout);
    std::fputc('\n', stdout);
  }
  return 0;
}

}  // namespace
}  // namespace spool::apps

SPOOL_COMMAND("tokenize", "text -> token ids (--json for {\"ids\":[...]})", spool::apps::RunTokenize);
SPOOL_COMMAND("detokenize", "token ids -> text", spool::apps::RunDetokenize);

// LoadTokenizer(model_path): picks the GGUF or tokenizer.json loader.
#include <filesystem>
#include <fstream>

#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace spool::tokenizer {

Result<std::unique_ptr<Tokenizer>> LoadTokenizer(const std::string& model_path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(model_path, ec)) {
    const fs::path dir(model_path);
    const fs::path json = dir / "tokenizer.json";
    if (!fs::exists(json, ec))
      return NotFound(model_path + ": no tokenizer.json in this folder (tokenizer.model alone is not supported)");
    const fs::path config = dir / "tokenizer_config.json";
    return LoadTokenizerFromJson(json.string(), fs::exists(config, ec) ? config.string() : "");
  }
  // Only regular files are read (a FIFO or device would block or never end).
  if (!fs::is_regular_file(model_path, ec))
    return fs::exists(model_path, ec) ? InvalidArgument(model_path + ": not a regular file or a model folder")
                                      : NotFound(model_path + ": no such file");
  std::ifstream in(model_path, std::ios::binary);
  if (!in) return NotFound(model_path + ": cannot open");
  char magic[4] = {};
  in.read(magic, 4);
  if (in.gcount() == 4 && magic[0] == 'G' && magic[1] == 'G' && magic[2] == 'U' && magic[3] == 'F') {
    SPOOL_ASSIGN_OR_RETURN(formats::GgufFile gguf, formats::ReadGguf(model_path));
    return LoadTokenizerFromGguf(gguf);
  }
  if (in.gcount() >= 1 && magic[0] == '{') {
    const fs::path config = fs::path(model_path).parent_path() / "tokenizer_config.json";
    return LoadTokenizerFromJson(model_path, fs::exists(config, ec) ? config.string() : "");
  }
  return Unsupported(model_path + ": neither a GGUF file, a tokenizer.json nor a model folder");
}

}  // namespace spool::tokenizer

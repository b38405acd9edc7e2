// Small string utilities: size parsing/formatting, splitting, file slurping.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace spool {

// Parses "4G", "512M", "1.5GiB", "100k", "123" (bytes). Suffixes are binary (K=1024).
Result<uint64_t> ParseSize(std::string_view text);
// "1.50 GiB", "512.0 MiB", "17 B".
std::string FormatBytes(uint64_t bytes);

std::vector<std::string> Split(std::string_view s, char sep);
bool StartsWith(std::string_view s, std::string_view prefix);
bool EndsWith(std::string_view s, std::string_view suffix);

// Reads a whole file. Fails with kNotFound / kIo naming the path.
Result<std::string> ReadFileToString(const std::string& path);

}  // namespace spool

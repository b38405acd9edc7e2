// Factories for the Reader backends (private to storage; see reader.h).
#pragma once

#include <memory>
#include <vector>

#include "storage/reader.h"

namespace spool::storage::detail {

// nullptr with `*why` set when io_uring cannot be initialised here.
std::unique_ptr<Reader> MakeUringReader(std::vector<File>& files, const ReaderOptions& options, std::string* why);
std::unique_ptr<Reader> MakePreadReader(std::vector<File>& files, const ReaderOptions& options);

}  // namespace spool::storage::detail

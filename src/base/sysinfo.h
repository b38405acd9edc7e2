// Process and machine facts: memory use, available RAM, whether a stream is a terminal.
#pragma once

#include <cstdint>
#include <cstdio>

namespace spool {

// Peak resident set size of this process so far (getrusage ru_maxrss), in bytes.
uint64_t PeakRssBytes();
// Current resident set size (from /proc/self/statm), in bytes; 0 if unknown.
uint64_t CurrentRssBytes();
// MemAvailable from /proc/meminfo, in bytes; 0 if unknown.
uint64_t AvailableRamBytes();
bool IsTerminal(std::FILE* f);

}  // namespace spool

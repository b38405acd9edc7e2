// Process and machine facts: memory use, available RAM, whether a stream is a terminal.
#pragma once

#include <cstdint>
#include <cstdio>

namespace spool {

// Peak resident set size of this process so far, as the kernel counts it: VmHWM from
// /proc/self/status (this program's address space only), else getrusage ru_maxrss
// (which also covers the parent's memory before exec). In bytes; 0 if unknown.
uint64_t PeakRssBytes();
// Current resident set size (from /proc/self/statm), in bytes; 0 if unknown.
uint64_t CurrentRssBytes();
// MemAvailable from /proc/meminfo, in bytes; 0 if unknown.
uint64_t AvailableRamBytes();
bool IsTerminal(std::FILE* f);

}  // namespace spool

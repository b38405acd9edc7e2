// CRC-32C (Castagnoli) of byte ranges: the per-record checksum of session files.
// Crc32c uses the SSE4.2 crc32 instruction when the build targets it (-march=native)
// and falls back to Crc32cRef, the plain table version it is tested against.
#pragma once

#include <cstddef>
#include <cstdint>

namespace spool::kv {

// crc: the value returned for the preceding bytes (0 to start). Returns the CRC of
// everything so far, so a record split over several buffers can be checked in pieces.
uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);
uint32_t Crc32cRef(const void* data, size_t n, uint32_t crc = 0);

}  // namespace spool::kv

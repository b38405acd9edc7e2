// CRC-32C: the known check value, and the fast path against the table reference.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "kv/checksum.h"

namespace spool::kv {
namespace {

TEST(Crc32c, CheckValue) {
  // The standard check value of CRC-32C (RFC 3720 appendix B.4 lists it too).
  EXPECT_EQ(Crc32cRef("123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(Crc32c("", 0), 0u);
}

TEST(Crc32c, FastEqualsReferenceAtEveryLengthAndSplit) {
  std::mt19937 rng(7);
  std::vector<uint8_t> data(4099);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  for (size_t n : {0, 1, 7, 8, 9, 63, 64, 65, 1000, 4099}) {
    for (size_t off : {0, 1, 3}) {
      if (off + n > data.size()) continue;
      const uint32_t want = Crc32cRef(data.data() + off, n);
      EXPECT_EQ(Crc32c(data.data() + off, n), want) << n << " " << off;
      const size_t half = n / 3;  // incremental = one shot
      EXPECT_EQ(Crc32c(data.data() + off + half, n - half, Crc32c(data.data() + off, half)), want);
    }
  }
}

}  // namespace
}  // namespace spool::kv

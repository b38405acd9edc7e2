#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>
#include <vector>

#include "base/dtype.h"
#include "base/progress.h"
#include "base/timer.h"
#include "base/status.h"
#include "base/strings.h"
#include "base/thread_pool.h"

namespace spool {
namespace {

TEST(Status, ResultCarriesValueOrError) {
  Result<int> good = 3;
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(*good, 3);
  Result<int> bad = InvalidArgument("nope");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.status().WithContext("file.gguf").message(), "file.gguf: nope");
}

TEST(Strings, ParseSize) {
  EXPECT_EQ(*ParseSize("4G"), 4ull << 30);
  EXPECT_EQ(*ParseSize("512M"), 512ull << 20);
  EXPECT_EQ(*ParseSize("1.5GiB"), 3ull << 29);
  EXPECT_EQ(*ParseSize("100k"), 102400u);
  EXPECT_EQ(*ParseSize("123"), 123u);
  EXPECT_FALSE(ParseSize("").ok());
  EXPECT_FALSE(ParseSize("4X").ok());
  EXPECT_FALSE(ParseSize("-1G").ok());
  EXPECT_FALSE(ParseSize("abc").ok());
}

TEST(DType, HalfConversionsRoundTrip) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    EXPECT_EQ(F32ToF16(f), h) << h;
  }
  EXPECT_EQ(F16ToF32(0x3c00), 1.0f);
  EXPECT_EQ(F32ToF16(65504.f), 0x7bff);
  EXPECT_EQ(F32ToF16(1e6f), 0x7c00);  // overflow → inf
  EXPECT_EQ(BF16ToF32(F32ToBF16(1.0f)), 1.0f);
  EXPECT_EQ(F32ToBF16(1.00390625f), 0x3f80);  // tie rounds to even
  EXPECT_EQ(F32ToBF16(1.01171875f), 0x3f82);
}

TEST(DType, BytesRespectsBlocks) {
  EXPECT_EQ(*DTypeBytes(DType::kQ4_K, 512), 288u);
  EXPECT_FALSE(DTypeBytes(DType::kQ4_K, 100).has_value());
  EXPECT_FALSE(DTypeBytes(DType::kF32, ~0ull).has_value());
}

TEST(ThreadPool, CoversRangeExactlyOnce) {
  ThreadPool pool(4);
  for (size_t n : {1u, 3u, 4u, 7u, 1000u}) {
    std::vector<std::atomic<int>> hits(n);
    pool.ParallelFor(n, [&](size_t b, size_t e, int) {
      for (size_t i = b; i < e; ++i) hits[i]++;
    });
    for (size_t i = 0; i < n; ++i) EXPECT_EQ(hits[i].load(), 1);
  }
}

// The hand-off either way: back-to-back calls (workers still spinning) and calls after
// the pool went to sleep (longer than ThreadPool::kSpinMicros idle), with every worker
// taking part; and a pool destroyed while its workers spin or sleep.
TEST(ThreadPool, SpinAndSleepHandOffs) {
  for (int threads : {2, 3, 8}) {
    ThreadPool pool(threads);
    std::atomic<int64_t> total{0};
    std::vector<std::atomic<int>> used(threads);
    for (int call = 0; call < 2000; ++call) {
      if (call % 500 == 499) std::this_thread::sleep_for(std::chrono::microseconds(3 * ThreadPool::kSpinMicros));
      pool.ParallelFor(static_cast<size_t>(threads) * 16, [&](size_t b, size_t e, int t) {
        total += static_cast<int64_t>(e - b);
        used[t]++;
      }, /*grain=*/16);
    }
    EXPECT_EQ(total.load(), 2000 * threads * 16);
    for (int t = 0; t < threads; ++t) EXPECT_EQ(used[t].load(), 2000) << "thread " << t;
  }
  { ThreadPool spinning(2); spinning.ParallelFor(64, [](size_t, size_t, int) {}); }  // destroyed while spinning
  {
    ThreadPool sleeping(2);
    std::this_thread::sleep_for(std::chrono::microseconds(3 * ThreadPool::kSpinMicros));
  }  // destroyed while asleep
}

TEST(ProgressLine, RendersDoneTotalRateEta) {
  std::FILE* devnull = std::fopen("/dev/null", "w");
  ProgressLine p("prefill", "tok", 100, devnull);
  const double t0 = NowSeconds();
  std::string line = p.Render(50, t0 + 10.0);  // 50 tokens in ~10 s: 5 tok/s, 10 s left
  EXPECT_NE(line.find("prefill  50/100 tok (50%)"), std::string::npos) << line;
  EXPECT_NE(line.find("tok/s"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 0:10"), std::string::npos) << line;
  // Non-terminal output: short work prints nothing at all (not even on Finish).
  p.Update(100);
  p.Finish();
  EXPECT_EQ(std::ftell(devnull), 0);
  std::fclose(devnull);
}

TEST(ProgressLine, QuadraticEtaFollowsAGrowingCostPerToken) {
  // Work whose cost grows like a prefill's: T(n) = a·n + b·n² seconds for n of N done.
  std::FILE* devnull = std::fopen("/dev/null", "w");
  const int64_t total = 1000;
  const double a = 0.01, b = 0.0001;  // 10 s of linear work and 100 s of quadratic work in all
  auto cost = [&](int64_t n) { return a * n + b * static_cast<double>(n) * n; };
  ProgressLine quad("prefill", "tok", total, devnull, 10.0, ProgressLine::Growth::kQuadratic);
  ProgressLine lin("prefill", "tok", total, devnull, 10.0, ProgressLine::Growth::kLinear);
  const double t0 = NowSeconds();  // both lines started within microseconds of this
  for (int64_t n = 50; n <= 300; n += 50) {
    quad.Observe(n, t0 + cost(n));
    lin.Observe(n, t0 + cost(n));
  }
  const double truth = cost(total) - cost(300);  // 110 s - 12 s = 98 s
  EXPECT_NEAR(quad.SecondsLeft(300, t0 + cost(300)), truth, 0.5);
  // The linear estimate (12 s for 300 tokens, so 28 s for the other 700) is far off.
  EXPECT_LT(lin.SecondsLeft(300, t0 + cost(300)), 0.4 * truth);
  EXPECT_NE(quad.Render(300, t0 + cost(300)).find("ETA 1:38"), std::string::npos) << quad.Render(300, t0 + cost(300));
  // Fewer than 3 observations: the linear estimate.
  ProgressLine early("prefill", "tok", total, devnull, 10.0, ProgressLine::Growth::kQuadratic);
  early.Observe(100, t0 + 10.0);
  EXPECT_NEAR(early.SecondsLeft(100, t0 + 10.0), 90.0, 0.5);
  std::fclose(devnull);
}

}  // namespace
}  // namespace spool

// End to end through the CLI: a ~380 MB random-weight model (generated into the build
// tree, deleted afterwards) runs under `--mem-budget 180M`, and the child process's
// peak RSS (getrusage, reported as peak_rss_bytes by `spool run --json`) stays under
// the budget while most weight groups stream. The greedy ids equal those of a fully
// resident run, on both I/O backends.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "synthetic_model.h"

namespace spool {
namespace {

class BigModel : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = std::filesystem::current_path().string() + "/streaming-rss-model-" + std::to_string(getpid());
    testing::SyntheticShape s;
    s.n_layer = 12, s.n_embd = 1024, s.n_ff = 4096, s.n_head = 16, s.n_head_kv = 4, s.n_vocab = 8192, s.tied = true;
    error_ = testing::WriteSyntheticLlama(dir_, s, 7);
  }
  static void TearDownTestSuite() { std::filesystem::remove_all(dir_); }

  // Runs spool and returns its JSON output (or null).
  static nlohmann::json Run(const std::string& extra) {
    std::string ids;
    for (int i = 0; i < 40; ++i) {
      if (i > 0) ids += ',';
      ids += std::to_string((i * 131 + 7) % 8192);
    }
    const std::string cmd = std::string(SPOOL_BINARY) + " run " + dir_ + " --prompt-ids " + ids +
                            " -n 6 --ignore-eos --json --ctx 256 --prefill-chunk 32 -t 2 " + extra + " 2>&1";
    std::FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return nullptr;
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int rc = ::pclose(p);
    EXPECT_EQ(rc, 0) << cmd << "\n" << out;
    auto j = nlohmann::json::parse(out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << out;
    return j.is_discarded() ? nlohmann::json() : j;
  }

  static std::string dir_, error_;
};
std::string BigModel::dir_, BigModel::error_;

TEST_F(BigModel, PeakRssStaysUnderBudgetWhileStreaming) {
  ASSERT_EQ(error_, "");
  const uint64_t budget = 180ull << 20;
  auto resident = Run("--mem-budget auto");
  ASSERT_TRUE(resident.is_object());
  ASSERT_TRUE(resident["stats"]["plan"]["streamed_groups"].empty()) << "auto budget should hold this model";
  for (const char* io : {"io_uring", "pread"}) {
    auto j = Run("--mem-budget 180M --io " + std::string(io));
    ASSERT_TRUE(j.is_object());
    const auto& st = j["stats"];
    std::printf("--io %s: peak RSS %.1f MiB, %zu of %zu groups streamed, decode %.2f GB/s\n", io,
                st["peak_rss_bytes"].get<double>() / (1 << 20), st["plan"]["streamed_groups"].size(),
                st["plan"]["streamed_groups"].size() + st["plan"]["resident_groups"].size(),
                st["decode_weight_gb_per_s"].get<double>());
    EXPECT_LT(st["peak_rss_bytes"].get<uint64_t>(), budget) << io << ": " << st.dump();
    EXPECT_GE(st["plan"]["streamed_groups"].size(), 8u) << st["plan"].dump();
    EXPECT_GT(st["decode_weight_bytes"].get<uint64_t>(), 5 * 6 * (30ull << 20)) << "every decode step streams";
    EXPECT_EQ(j["ids"], resident["ids"]) << io << ": streamed and resident runs diverge";
  }
  // The model is far larger than the budget: without streaming this could not run.
  uint64_t model_bytes = std::filesystem::file_size(dir_ + "/model.safetensors");
  EXPECT_GT(model_bytes, 2 * budget);
}

// Runs a spool command line; returns (exit status as from pclose, stdout+stderr).
std::pair<int, std::string> Spool(const std::string& args) {
  const std::string cmd = std::string(SPOOL_BINARY) + " " + args + " 2>&1";
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  return {::pclose(p), out};
}

TEST_F(BigModel, BudgetTooSmallIsAClearError) {
  ASSERT_EQ(error_, "");
  auto [rc, out] = Spool("run " + dir_ + " --prompt-ids 1,2,3 -n 1 --mem-budget 40M");
  EXPECT_NE(rc, 0);
  EXPECT_TRUE(WIFEXITED(rc)) << "must exit, not crash";
  EXPECT_NE(out.find("--mem-budget"), std::string::npos) << out;
  EXPECT_NE(out.find("too small"), std::string::npos) << out;
}

TEST_F(BigModel, MalformedBudgetIsAClearError) {
  ASSERT_EQ(error_, "");
  for (const char* bad : {"abc", "12Q", "-5G", ""}) {
    auto [rc, out] = Spool("run " + dir_ + " --prompt-ids 1,2 -n 1 --mem-budget '" + bad + "'");
    EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) != 0) << bad << ": " << out;
    EXPECT_NE(out.find("--mem-budget"), std::string::npos) << bad << ": " << out;
  }
}

TEST_F(BigModel, ShowPlanPrintsThePlan) {
  ASSERT_EQ(error_, "");
  auto [rc, out] = Spool("show " + dir_ + " --plan --mem-budget 180M --ctx 256 --prefill-chunk 32 --disk-bw 1G");
  ASSERT_EQ(rc, 0) << out;
  for (const char* want : {"resident groups", "streamed groups", "streaming ring      ", "streamed per step",
                           "predicted decode", "tok/s"})
    EXPECT_NE(out.find(want), std::string::npos) << want << " missing in:\n" << out;
}

}  // namespace
}  // namespace spool

// Sessions: save → restore continues exactly like an uninterrupted run (InRamKv and
// DiskKv, either side); every kind of damaged or foreign session file is a clear
// error, never a crash or a silently wrong cache.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "kv/checksum.h"
#include "kv/disk_kv.h"
#include "kv/session.h"
#include "runtime/engine.h"
#include "runtime/generate.h"

namespace spool {
namespace {

std::string Fixture(const std::string& name) { return std::string(SPOOL_TEST_FIXTURES) + "/models/" + name; }

std::string TempDir(const std::string& tag) {
  auto p = std::filesystem::temp_directory_path() / ("spool-sess-" + tag + "-" + std::to_string(::getpid()));
  std::filesystem::create_directories(p);
  return p.string();
}

std::unique_ptr<runtime::Engine> Open(const std::string& model, int64_t window, DType dtype = DType::kBF16) {
  runtime::EngineOptions o;
  o.threads = 2;
  o.load_tokenizer = false;
  o.ctx = 256;
  o.prefill_chunk = 32;
  o.kv_page_tokens = 16;
  o.kv_window = window;
  o.kv_dtype = dtype;
  o.kv_dir = TempDir("kv");
  auto e = runtime::Engine::Open(model, o);
  EXPECT_TRUE(e.ok()) << e.status().message();
  return std::move(*e);
}

std::vector<int32_t> Prompt(int64_t n, int64_t vocab) {
  std::vector<int32_t> p(n);
  std::mt19937 rng(11);
  for (auto& t : p) t = static_cast<int32_t>(rng() % vocab);
  return p;
}

runtime::GenerateRequest Greedy(std::vector<int32_t> prompt, int64_t n) {
  runtime::GenerateRequest r;
  r.prompt = std::move(prompt);
  r.sampling.temperature = 0;
  r.max_tokens = n;
  r.ignore_eos = true;
  return r;
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

void WriteAll(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The metadata of a session file's bytes.
nlohmann::json MetaOf(const std::string& bytes) {
  uint64_t len;
  std::memcpy(&len, bytes.data() + 16, 8);
  return nlohmann::json::parse(bytes.substr(32, len));
}

// A version 2 file rewritten as version 1 wrote it: every layer stores every row, the
// rows a sliding layer had released as zeros (with their checksums), no live_from.
std::string AsVersion1(const std::string& v2) {
  uint64_t meta_len;
  std::memcpy(&meta_len, v2.data() + 16, 8);
  nlohmann::ordered_json j = nlohmann::ordered_json::parse(v2.substr(32, meta_len));
  const auto live = j["live_from"].get<std::vector<int64_t>>();
  j.erase("live_from");
  const int64_t n = j["n_tokens"], rt = j["record_tokens"];
  const uint64_t rb = j["n_head_kv"].get<uint64_t>() * j["head_dim"].get<uint64_t>() * (j["kv_dtype"] == "f32" ? 4 : 2);
  const std::string meta = j.dump();
  std::string out(32, '\0');
  std::memcpy(out.data(), "SPOOLSES", 8);
  const uint32_t version = 1, meta_crc = kv::Crc32c(meta.data(), meta.size());
  const uint64_t len = meta.size();
  std::memcpy(out.data() + 8, &version, 4);
  std::memcpy(out.data() + 12, &meta_crc, 4);
  std::memcpy(out.data() + 16, &len, 8);
  const uint32_t head_crc = kv::Crc32c(out.data(), 24);
  std::memcpy(out.data() + 24, &head_crc, 4);
  out += meta;
  size_t off = 32 + meta_len;
  for (size_t l = 0; l < live.size(); ++l) {
    for (int64_t first = 0; first < live[l]; first += rt) {  // released records: zeros
      const std::string zeros(rt * rb, '\0');
      uint64_t where[2] = {l, static_cast<uint64_t>(first / rt)};
      uint32_t c = kv::Crc32c(where, sizeof(where));
      c = kv::Crc32c(zeros.data(), zeros.size(), c);
      c = kv::Crc32c(zeros.data(), zeros.size(), c);
      out += zeros + zeros + std::string(reinterpret_cast<const char*>(&c), 4);
    }
    const int64_t rows = n - live[l], records = (rows + rt - 1) / rt;
    const size_t bytes = rows * 2 * rb + records * 4;
    out += v2.substr(off, bytes);
    off += bytes;
  }
  return out + v2.substr(off);  // the trailer
}

// One run of 2n tokens equals n tokens, save, restore (in a fresh engine), n more.
// `rewrite` may change the saved file's bytes before the restore.
void CheckSplitRun(int64_t window_save, int64_t window_load, const std::string& name = "llama-gqa-tied-bf16",
                   const std::function<std::string(const std::string&)>& rewrite = nullptr) {
  const std::string model = Fixture(name);
  const std::string path = TempDir("split") + "/s.session";
  auto e1 = Open(model, 0);
  const auto prompt = Prompt(70, e1->n_vocab());
  auto whole_seq = e1->NewSequence();
  auto whole = runtime::Generate(*e1, *whole_seq, Greedy(prompt, 24));
  ASSERT_TRUE(whole.ok()) << whole.status().message();

  auto e2 = Open(model, window_save);
  auto seq = e2->NewSequence();
  auto first = runtime::Generate(*e2, *seq, Greedy(prompt, 12));
  ASSERT_TRUE(first.ok());
  const std::vector<int32_t> pending{first->ids.back()};
  ASSERT_TRUE(e2->SaveSession(path, *seq, pending, {{"note", "test"}}).ok());
  if (rewrite) WriteAll(path, rewrite(ReadAll(path)));

  auto e3 = Open(model, window_load);
  std::vector<int32_t> restored_pending;
  auto restored = e3->LoadSession(path, &restored_pending);
  ASSERT_TRUE(restored.ok()) << restored.status().message();
  EXPECT_EQ((*restored)->tokens(), seq->tokens());
  EXPECT_EQ(restored_pending, pending);
  auto second = runtime::Generate(*e3, **restored, Greedy(restored_pending, 12));
  ASSERT_TRUE(second.ok());
  std::vector<int32_t> joined = first->ids;
  joined.insert(joined.end(), second->ids.begin(), second->ids.end());
  EXPECT_EQ(joined, whole->ids);
  // The restore did not recompute the saved prefix: only the pending token was fed.
  EXPECT_EQ(e3->stats().prefill_tokens, 1u);
}

TEST(Session, SplitRunEqualsWholeRunInRam) { CheckSplitRun(0, 0); }
TEST(Session, SplitRunEqualsWholeRunDiskToRam) { CheckSplitRun(20, 0); }
TEST(Session, SplitRunEqualsWholeRunRamToDisk) { CheckSplitRun(0, 20); }
// Gemma 3 (sliding layers of window 4): saved at 82 tokens, far past the window, with
// the sliding layers' released rows stored as zeros; restores and continues identically.
TEST(Session, SlidingWindowSplitRunInRam) { CheckSplitRun(0, 0, "gemma3-swa-bf16"); }
TEST(Session, SlidingWindowSplitRunDiskToRam) { CheckSplitRun(20, 0, "gemma3-swa-bf16"); }
TEST(Session, SlidingWindowSplitRunRamToDisk) { CheckSplitRun(0, 20, "gemma3-swa-bf16"); }
// Version 1 files (every row stored, zeros where released) still load and continue.
TEST(Session, Version1FilesStillLoad) {
  CheckSplitRun(0, 0, "llama-gqa-tied-bf16", AsVersion1);
  CheckSplitRun(0, 20, "gemma3-swa-bf16", AsVersion1);
}

// A session saved past the window stores only the sliding layers' live rows: Gemma 3
// at 82 tokens (pages of 16, window 4) keeps layers 0-4 from position 64 (the page
// holding 79, the oldest key the next query sees) and the global layer 5 whole.
TEST(Session, SlidingLayersStoreOnlyTheWindow) {
  const std::string path = TempDir("live") + "/s.session";
  for (int64_t window : {0, 20}) {  // saved from RAM KV and from disk KV
    auto e = Open(Fixture("gemma3-swa-bf16"), window);
    auto seq = e->NewSequence();
    std::vector<float> logits(e->n_vocab());
    ASSERT_TRUE(e->Prefill(*seq, Prompt(82, e->n_vocab()), logits.data()).ok());
    ASSERT_TRUE(e->SaveSession(path, *seq, {}, {}).ok());
    auto info = kv::ReadSessionInfo(path);
    ASSERT_TRUE(info.ok()) << info.status().message();
    EXPECT_EQ(info->live_from, (std::vector<int64_t>{64, 64, 64, 64, 64, 0}));
    // 5 layers × 18 rows + 1 layer × 82 rows, K and V, one checksum per record.
    const uint64_t rb = info->row_bytes();
    const uint64_t records = 5 * 2 + 6;
    const std::string bytes = ReadAll(path);
    uint64_t meta_len;
    std::memcpy(&meta_len, bytes.data() + 16, 8);
    EXPECT_EQ(info->file_bytes, 32 + meta_len + (5 * 18 + 82) * 2 * rb + records * 4 + 8);
    EXPECT_LT(info->file_bytes, AsVersion1(bytes).size());
    EXPECT_TRUE(kv::VerifySession(path, *info).ok());
  }
}

class Damaged : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = TempDir("damaged");
    path_ = dir_ + "/good.session";
    engine_ = Open(Fixture("llama-gqa-tied-bf16"), 0);
    auto seq = engine_->NewSequence();
    std::vector<float> logits(engine_->n_vocab());
    ASSERT_TRUE(engine_->Prefill(*seq, Prompt(40, engine_->n_vocab()), logits.data()).ok());
    const int32_t pending = 5;
    ASSERT_TRUE(engine_->SaveSession(path_, *seq, std::span<const int32_t>(&pending, 1), {}).ok());
    std::ifstream f(path_, std::ios::binary);
    bytes_.assign(std::istreambuf_iterator<char>(f), {});
  }
  std::string Write(const std::string& name, const std::string& bytes) {
    std::string p = dir_ + "/" + name + ".session";
    std::ofstream(p, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return p;
  }
  Status Load(const std::string& path) {
    std::vector<int32_t> pending;
    auto r = engine_->LoadSession(path, &pending);
    return r.ok() ? Status::Ok() : r.status();
  }
  std::string dir_, path_, bytes_;
  std::unique_ptr<runtime::Engine> engine_;
};

void ExpectError(const Status& st, ErrorCode code, const std::string& needle) {
  ASSERT_FALSE(st.ok()) << "damaged session accepted (wanted: " << needle << ")";
  EXPECT_EQ(st.code(), code) << st.message();
  EXPECT_NE(st.message().find(needle), std::string::npos) << st.message();
}

TEST_F(Damaged, GoodFileLoads) { EXPECT_TRUE(Load(path_).ok()); }

TEST_F(Damaged, TruncatedAnywhere) {
  for (size_t n : {size_t{0}, size_t{10}, size_t{31}, size_t{40}, bytes_.size() / 2, bytes_.size() - 1}) {
    Status st = Load(Write("trunc", bytes_.substr(0, n)));
    ASSERT_FALSE(st.ok()) << n;
    EXPECT_EQ(st.code(), ErrorCode::kInvalidFile) << st.message();
    EXPECT_NE(st.message().find("trunc"), std::string::npos) << st.message();
  }
  ExpectError(Load(Write("long", bytes_ + "x")), ErrorCode::kInvalidFile, "too long");
}

TEST_F(Damaged, CorruptPageIsCaughtByItsChecksum) {
  std::string b = bytes_;
  b[b.size() - 100] ^= 0x01;  // inside the last layer's last record
  ExpectError(Load(Write("flip", b)), ErrorCode::kInvalidFile, "checksum mismatch in layer 1");
}

TEST_F(Damaged, EveryByteIsCovered) {
  // Flipping any single byte is detected (sampled every 7 bytes to keep it quick).
  for (size_t i = 0; i < bytes_.size(); i += 7) {
    std::string b = bytes_;
    b[i] ^= 0x20;
    Status st = Load(Write("any", b));
    EXPECT_FALSE(st.ok()) << "flip at byte " << i << " went unnoticed";
  }
}

TEST_F(Damaged, HeaderAndMetadata) {
  std::string b = bytes_;
  b[0] = 'X';
  ExpectError(Load(Write("magic", b)), ErrorCode::kInvalidFile, "bad magic");
  b = bytes_;
  b[8] = 9;  // version 9
  ExpectError(Load(Write("version", b)), ErrorCode::kUnsupported, "version 9");
  b = bytes_;
  b[40] ^= 1;  // inside the JSON
  ExpectError(Load(Write("meta", b)), ErrorCode::kInvalidFile, "metadata");
  ExpectError(Load(dir_ + "/absent.session"), ErrorCode::kNotFound, "no such session");
}

// Replaces the metadata by `meta` (with valid checksums).
std::string WithRawMeta(const std::string& bytes, const std::string& meta) {
  uint64_t len;
  std::memcpy(&len, bytes.data() + 16, 8);
  std::string out = bytes.substr(0, 32) + meta + bytes.substr(32 + len);
  uint64_t n = meta.size();
  std::memcpy(out.data() + 16, &n, 8);
  uint32_t c = kv::Crc32c(meta.data(), meta.size());
  std::memcpy(out.data() + 12, &c, 4);
  c = kv::Crc32c(out.data(), 24);
  std::memcpy(out.data() + 24, &c, 4);
  return out;
}

// Rewrites the metadata (with valid checksums) to check the semantic validation.
std::string WithMeta(const std::string& bytes, const std::function<void(nlohmann::json&)>& edit) {
  uint64_t len;
  std::memcpy(&len, bytes.data() + 16, 8);
  auto j = nlohmann::json::parse(bytes.substr(32, len));
  edit(j);
  return WithRawMeta(bytes, j.dump());
}

// A crafted file (checksums are no protection against intent) with metadata nested
// 100,000 deep is refused by the bounded parse, not by a stack overflow.
TEST_F(Damaged, DeeplyNestedMetadata) {
  const std::string deep = R"({"format":"spool-session","x":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  ExpectError(Load(Write("deep", WithRawMeta(bytes_, deep))), ErrorCode::kInvalidFile, "nested deeper");
}

TEST_F(Damaged, ForeignOrInconsistentMetadata) {
  ExpectError(Load(Write("model", WithMeta(bytes_, [](auto& j) { j["fingerprint"] = "0123"; }))),
              ErrorCode::kInvalidFile, "another model");
  ExpectError(Load(Write("ntok", WithMeta(bytes_, [](auto& j) { j["n_tokens"] = 41; }))), ErrorCode::kInvalidFile,
              "n_tokens");
  ExpectError(Load(Write("shape", WithMeta(bytes_, [](auto& j) { j["n_layer"] = 1; j["live_from"] = {0}; }))), ErrorCode::kInvalidFile,
              "expected");  // the sizes no longer add up
  ExpectError(Load(Write("huge", WithMeta(bytes_, [](auto& j) { j["head_dim"] = 1 << 30; }))),
              ErrorCode::kInvalidFile, "head_dim");
  ExpectError(Load(Write("ids", WithMeta(bytes_, [](auto& j) { j["pending"] = {-1}; }))), ErrorCode::kInvalidFile,
              "pending");
  ExpectError(Load(Write("vocab", WithMeta(bytes_, [](auto& j) { j["pending"] = {100000}; }))),
              ErrorCode::kInvalidArgument, "outside the vocabulary");
  ExpectError(Load(Write("dtype", WithMeta(bytes_, [](auto& j) { j["kv_dtype"] = "f16"; }))),
              ErrorCode::kInvalidFile, "kv_dtype");
}

// live_from is untrusted: only a sliding layer may skip rows, only rows its window no
// longer needs, in whole records; version 2 requires it.
TEST(SessionLiveFrom, CraftedValuesAreRefused) {
  const std::string dir = TempDir("livefrom");
  auto e = Open(Fixture("gemma3-swa-bf16"), 0);
  auto seq = e->NewSequence();
  std::vector<float> logits(e->n_vocab());
  ASSERT_TRUE(e->Prefill(*seq, Prompt(82, e->n_vocab()), logits.data()).ok());
  ASSERT_TRUE(e->SaveSession(dir + "/good.session", *seq, {}, {}).ok());
  const std::string good = ReadAll(dir + "/good.session");
  auto load = [&](const std::string& name, const std::function<void(nlohmann::json&)>& edit) {
    const std::string p = dir + "/" + name + ".session";
    WriteAll(p, WithMeta(good, edit));
    std::vector<int32_t> pending;
    auto r = e->LoadSession(p, &pending);
    return r.ok() ? Status::Ok() : r.status();
  };
  ASSERT_TRUE(load("same", [](auto&) {}).ok());
  ExpectError(load("missing", [](auto& j) { j.erase("live_from"); }), ErrorCode::kInvalidFile, "live_from");
  ExpectError(load("short", [](auto& j) { j["live_from"] = {64, 64}; }), ErrorCode::kInvalidFile, "live_from");
  ExpectError(load("unaligned", [](auto& j) { j["live_from"][0] = 60; }), ErrorCode::kInvalidFile,
              "multiple of record_tokens");
  ExpectError(load("past_end", [](auto& j) { j["live_from"][0] = 96; }), ErrorCode::kInvalidFile, "live_from");
  ExpectError(load("negative", [](auto& j) { j["live_from"][0] = -16; }), ErrorCode::kInvalidFile, "live_from");
  // The sizes no longer match the records; with the sizes made to match (a global layer
  // claiming to skip 16 rows while a sliding layer stores 16 more), the window check.
  ExpectError(load("sizes", [](auto& j) { j["live_from"][5] = 16; }), ErrorCode::kInvalidFile, "expected");
  ExpectError(load("global", [](auto& j) {
                j["live_from"][4] = 48;
                j["live_from"][5] = 16;
              }),
              ErrorCode::kInvalidFile, "attends to every position");
  ExpectError(load("window", [](auto& j) {
                j["live_from"][3] = 80;
                j["live_from"][4] = 48;
              }),
              ErrorCode::kInvalidFile, "attends to the last 4 positions");
}

TEST_F(Damaged, OtherModelOrSettings) {
  auto other = Open(Fixture("mistral-gqa-f16"), 0);
  std::vector<int32_t> pending;
  auto r = other->LoadSession(path_, &pending);
  ExpectError(r.status(), ErrorCode::kInvalidFile, "another model");
  auto f32 = Open(Fixture("llama-gqa-tied-bf16"), 0, DType::kF32);
  r = f32->LoadSession(path_, &pending);
  ExpectError(r.status(), ErrorCode::kInvalidArgument, "--kv-type bf16");
}

TEST(SessionNames, Validation) {
  EXPECT_TRUE(kv::ValidateSessionName("chat-1_a.b").ok());
  EXPECT_FALSE(kv::ValidateSessionName("").ok());
  EXPECT_FALSE(kv::ValidateSessionName("../x").ok());
  EXPECT_FALSE(kv::ValidateSessionName(".hidden").ok());
  EXPECT_FALSE(kv::ValidateSessionName("a/b").ok());
  EXPECT_FALSE(kv::ValidateSessionName(std::string(129, 'a')).ok());
}

}  // namespace
}  // namespace spool

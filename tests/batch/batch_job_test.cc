// apps/batch_job: input parsing (malformed lines → per-line errors), shards, output
// recovery (torn last line), record shapes.
#include "apps/batch_job.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/strings.h"

namespace spool::apps::batch {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("spool_batch_test_" + std::to_string(::getpid()) + "_" + name)).string();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

TEST(BatchInput, ParsesChatAndCompletionLines) {
  const std::string in =
      R"({"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"temperature":0}})"
      "\n\n"
      R"({"custom_id":"b","body":{"prompt":"Once upon","max_tokens":3,"stop":["."]}})"
      "\n";
  auto lines = ParseBatchInput(in);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_FALSE(lines[0].error.has_value());
  EXPECT_EQ(lines[0].line, 1);
  EXPECT_EQ(lines[0].custom_id, "a");
  EXPECT_TRUE(lines[0].spec.chat);
  EXPECT_EQ(lines[0].spec.max_tokens, 5);
  EXPECT_FALSE(lines[1].error.has_value()) << lines[1].error->message;
  EXPECT_EQ(lines[1].line, 3);  // the blank line keeps its number
  EXPECT_FALSE(lines[1].spec.chat);
  EXPECT_EQ(lines[1].spec.prompt_text, "Once upon");
  ASSERT_EQ(lines[1].spec.stop.size(), 1u);
  EXPECT_FALSE(lines[0].keyed_by_line);
}

struct BadCase {
  std::string line;
  std::string code;
  std::string message_part;
  bool keyed_by_line;
};

TEST(BatchInput, MalformedLinesBecomePerLineErrors) {
  const std::vector<BadCase> cases = {
      {"{not json", "invalid_json", "not valid JSON", true},
      {"[1,2]", "invalid_json", "got array", true},
      {R"({"body":{"prompt":"x"}})", "invalid_custom_id", "missing 'custom_id'", true},
      {R"({"custom_id":7,"body":{"prompt":"x"}})", "invalid_custom_id", "got integer", true},
      {R"({"custom_id":"","body":{"prompt":"x"}})", "invalid_custom_id", "non-empty", true},
      {R"({"custom_id":"c1"})", "invalid_request", "missing 'body'", false},
      {R"({"custom_id":"c2","body":"hello"})", "invalid_request", "got string", false},
      {R"({"custom_id":"c3","body":{"max_tokens":3}})", "invalid_request", "neither 'messages' nor 'prompt'", false},
      {R"({"custom_id":"c4","url":"/v1/embeddings","body":{"input":"x"}})", "invalid_url", "/v1/embeddings", false},
      {R"({"custom_id":"c5","method":"GET","body":{"prompt":"x"}})", "invalid_request", "POST", false},
      {R"({"custom_id":"c6","body":{"prompt":"x","max_tokens":"ten"}})", "invalid_request", "max_tokens", false},
      {R"({"custom_id":"c7","body":{"messages":"hi"}})", "invalid_request", "messages", false},
      {R"({"custom_id":"c8","body":{"prompt":"x","temperature":-1}})", "invalid_request", "temperature", false},
  };
  for (const BadCase& c : cases) {
    auto lines = ParseBatchInput(c.line + "\n");
    ASSERT_EQ(lines.size(), 1u) << c.line;
    ASSERT_TRUE(lines[0].error.has_value()) << c.line;
    EXPECT_EQ(lines[0].error->code, c.code) << c.line << ": " << lines[0].error->message;
    EXPECT_NE(lines[0].error->message.find(c.message_part), std::string::npos) << c.line << ": " << lines[0].error->message;
    EXPECT_EQ(lines[0].keyed_by_line, c.keyed_by_line) << c.line;
  }
}

TEST(BatchInput, BadLinesDoNotDisturbGoodOnes) {
  const std::string in = "garbage\n" R"({"custom_id":"ok","body":{"prompt":"x"}})" "\n\x01\xff\n";
  auto lines = ParseBatchInput(in);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_TRUE(lines[0].error.has_value());
  EXPECT_FALSE(lines[1].error.has_value());
  EXPECT_TRUE(lines[2].error.has_value());
  EXPECT_EQ(lines[2].line, 3);
}

TEST(BatchInput, DuplicateCustomIdIsAnErrorOnLaterLines) {
  const std::string in = R"({"custom_id":"x","body":{"prompt":"a"}})" "\n" R"({"custom_id":"x","body":{"prompt":"b"}})" "\n";
  auto lines = ParseBatchInput(in);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_FALSE(lines[0].error.has_value());
  ASSERT_TRUE(lines[1].error.has_value());
  EXPECT_EQ(lines[1].error->code, "duplicate_custom_id");
  EXPECT_NE(lines[1].error->message.find("line 1"), std::string::npos);
  EXPECT_TRUE(lines[1].keyed_by_line);
}

TEST(BatchInput, OverlongLineIsAnError) {
  auto lines = ParseBatchInput(std::string(100, 'x') + "\n", /*max_line_bytes=*/50);
  ASSERT_EQ(lines.size(), 1u);
  ASSERT_TRUE(lines[0].error.has_value());
  EXPECT_EQ(lines[0].error->code, "line_too_long");
}

TEST(BatchShard, ParsesAndRejects) {
  auto s = ParseShard("2/5");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->index, 2);
  EXPECT_EQ(s->count, 5);
  for (const char* bad : {"", "1", "5/5", "-1/3", "a/3", "1/0", "1/", "/3", "1/3x", "0/99999999999"}) {
    auto r = ParseShard(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("--shard"), std::string::npos);
    }
  }
}

TEST(BatchShard, EveryLineInExactlyOneShard) {
  for (int64_t n : {1, 2, 3, 7}) {
    for (int64_t line = 0; line < 100; ++line) {
      int hits = 0;
      for (int64_t i = 0; i < n; ++i) hits += Shard{i, n}.Contains(line) ? 1 : 0;
      EXPECT_EQ(hits, 1) << "line " << line << " n " << n;
    }
  }
}

TEST(BatchOutput, RecoverMissingFileIsEmpty) {
  auto st = RecoverOutput(TempPath("absent.jsonl"));
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->records, 0);
}

TEST(BatchOutput, RoundTripAndTornLineTruncated) {
  const std::string path = TempPath("out.jsonl");
  std::remove(path.c_str());
  auto lines = ParseBatchInput(std::string(R"({"custom_id":"a","body":{"prompt":"x"}})") + "\nbad\n" +
                               R"({"custom_id":"a","body":{"prompt":"y"}})" + "\n");
  ASSERT_EQ(lines.size(), 3u);
  {
    auto w = OutputWriter::Open(path, /*fsync_each=*/false);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE(w->Append(SuccessRecord(lines[0], Json{{"object", "text_completion"}})).ok());
    ASSERT_TRUE(w->Append(ErrorRecord(lines[1], *lines[1].error)).ok());
    ASSERT_TRUE(w->Append(ErrorRecord(lines[2], *lines[2].error)).ok());
  }
  auto whole = ReadFileToString(path);
  ASSERT_TRUE(whole.ok());
  // A kill in the middle of a write leaves a prefix of a record without '\n'.
  WriteFile(path, *whole + R"({"id":"batch_req_1","custom_id":"zz","resp)");
  auto st = RecoverOutput(path);
  ASSERT_TRUE(st.ok()) << st.status().message();
  EXPECT_EQ(st->records, 3);
  EXPECT_GT(st->truncated_bytes, 0u);
  EXPECT_EQ(st->done_ids, std::set<std::string>{"a"});
  EXPECT_EQ(st->done_lines, (std::set<int64_t>{2, 3}));
  EXPECT_TRUE(st->Done(lines[0]));
  EXPECT_TRUE(st->Done(lines[1]));
  EXPECT_TRUE(st->Done(lines[2]));
  auto after = ReadFileToString(path);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, *whole);  // the torn line is gone, nothing else changed
  std::remove(path.c_str());
}

TEST(BatchOutput, ForeignContentIsRefusedAndLeftAlone) {
  const std::string path = TempPath("foreign.jsonl");
  WriteFile(path, "{\"custom_id\":\"a\",\"error\":null}\nhello world\n");
  auto st = RecoverOutput(path);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("line 2"), std::string::npos) << st.status().message();
  auto after = ReadFileToString(path);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, "{\"custom_id\":\"a\",\"error\":null}\nhello world\n");
  std::remove(path.c_str());
}

TEST(BatchRecord, Shapes) {
  auto lines = ParseBatchInput(R"({"custom_id":"q","body":{"prompt":"x"}})" "\n{}\n");
  ASSERT_EQ(lines.size(), 2u);
  Json ok = SuccessRecord(lines[0], Json{{"object", "text_completion"}});
  EXPECT_EQ(ok["custom_id"], "q");
  EXPECT_EQ(ok["response"]["status_code"], 200);
  EXPECT_EQ(ok["response"]["body"]["object"], "text_completion");
  EXPECT_TRUE(ok["error"].is_null());
  EXPECT_EQ(ok["id"].get<std::string>().rfind("batch_req_", 0), 0u);
  EXPECT_EQ(RequestId(lines[0]), RequestId(lines[0]));
  Json bad = ErrorRecord(lines[1], *lines[1].error);
  EXPECT_TRUE(bad["custom_id"].is_null());
  EXPECT_TRUE(bad["response"].is_null());
  EXPECT_EQ(bad["error"]["code"], "invalid_custom_id");
  EXPECT_EQ(bad["error"]["line"], 2);
}

}  // namespace
}  // namespace spool::apps::batch

// Jinja semantics and safety. Snippet expectations come from Python jinja2 with
// transformers' environment (tests/fixtures/chat/snippets.json, written by
// tools/gen_template_fixtures.py); the safety tests check spool's own limits.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "chat/chat_template.h"

namespace spool::chat {
namespace {

using json = nlohmann::ordered_json;

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Renders with the snippet variables as extra vars (no messages etc. needed).
Result<std::string> RenderWith(const std::string& src, const json& vars, int64_t now, TemplateErrorDetail* err,
                               const jinja::Limits& limits = {}) {
  ChatTemplateInputs in;
  in.extra_vars = vars;
  in.now_unix_seconds = now;
  in.limits = limits;
  return RenderChatTemplate(src, in, err);
}

TEST(Jinja, SnippetsMatchPythonJinja2) {
  json fx = json::parse(ReadFile(std::string(SPOOL_TEST_FIXTURES) + "/chat/snippets.json"));
  int n = 0;
  for (const auto& s : fx["snippets"]) {
    ++n;
    const std::string src = s["template"].get<std::string>();
    TemplateErrorDetail err;
    auto out = RenderWith(src, fx["vars"], fx["now_unix"].get<int64_t>(), &err);
    if (s.contains("output")) {
      ASSERT_TRUE(out.ok()) << src << "\n" << out.status().message();
      EXPECT_EQ(*out, s["output"].get<std::string>()) << src;
      continue;
    }
    ASSERT_FALSE(out.ok()) << src << "\nexpected " << s["error"] << ", got output: " << *out;
    EXPECT_EQ(err.type, s["error_type"].get<std::string>()) << src << "\n" << err.message;
    if (s.contains("line")) {
      // Syntax errors: same line as jinja2 (wording of the message differs).
      EXPECT_EQ(err.line, s["line"].get<int>()) << src << "\n" << err.message;
      EXPECT_GT(err.column, 0) << src;
    } else {
      EXPECT_EQ(err.message, s["error"].get<std::string>()) << src;
    }
  }
  EXPECT_GE(n, 50);
}

TEST(Jinja, SyntaxErrorReportsLineAndColumn) {
  TemplateErrorDetail err;
  auto out = RenderWith("ok\n{% if x %}\n  {{ a + }}\n{% endif %}", json::object(), 0, &err);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), ErrorCode::kInvalidFile);
  EXPECT_EQ(err.type, "TemplateSyntaxError");
  EXPECT_EQ(err.line, 3);
  EXPECT_EQ(err.column, 10);
  EXPECT_NE(out.status().message().find("(line 3, column 10)"), std::string::npos) << out.status().message();
}

TEST(Jinja, RaiseExceptionSurfacesTemplateMessage) {
  TemplateErrorDetail err;
  auto out = RenderWith("a\n{{ raise_exception('Conversation roles must alternate') }}", json::object(), 0, &err);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(err.type, "TemplateError");
  EXPECT_EQ(err.message, "Conversation roles must alternate");
  EXPECT_EQ(err.line, 2);
  EXPECT_EQ(out.status().message().rfind("TemplateError: Conversation roles must alternate", 0), 0u);
}

TEST(Jinja, InfiniteRecursionIsStopped) {
  TemplateErrorDetail err;
  auto out = RenderWith("{% macro f() %}x{{ f() }}{% endmacro %}{{ f() }}", json::object(), 0, &err);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), ErrorCode::kResourceExhausted);
  EXPECT_EQ(err.type, "LimitError");
  EXPECT_NE(err.message.find("infinite recursion"), std::string::npos) << err.message;
}

TEST(Jinja, LoopIterationLimit) {
  jinja::Limits limits;
  limits.max_loop_iterations = 1000;
  TemplateErrorDetail err;
  auto out = RenderWith("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", json::object(), 0,
                        &err, limits);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(err.type, "LimitError");
  // The same loops under the default limit run fine.
  EXPECT_TRUE(RenderWith("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", json::object(), 0,
                         nullptr).ok());
}

TEST(Jinja, ExponentialMacroBlowupIsStopped) {
  // Each level calls the next twice: 2^40 calls unless the iteration/output limits bite.
  std::string src = "{% macro f(n) %}{% if n > 0 %}{% for i in range(2) %}{{ f(n - 1) }}{% endfor %}{% else %}ab{% endif %}{% endmacro %}{{ f(40) }}";
  jinja::Limits limits;
  limits.max_loop_iterations = 20000;  // keeps the test fast under ASan
  TemplateErrorDetail err;
  auto out = RenderWith(src, json::object(), 0, &err, limits);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(err.type, "LimitError");
}

TEST(Jinja, OutputSizeLimit) {
  jinja::Limits limits;
  limits.max_output_bytes = 1 << 16;
  TemplateErrorDetail err;
  auto out = RenderWith("{{ 'x' * 100000 }}", json::object(), 0, &err, limits);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(err.type, "LimitError");
  out = RenderWith("{% for i in range(10000) %}0123456789{% endfor %}", json::object(), 0, &err, limits);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(err.type, "LimitError");
}

TEST(Jinja, DeepNestingIsRejectedNotCrashing) {
  std::string deep(100000, '(');
  TemplateErrorDetail err;
  auto out = RenderWith("{{ " + deep + " }}", json::object(), 0, &err);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(err.type, "TemplateSyntaxError");
  std::string ifs;
  for (int i = 0; i < 5000; ++i) ifs += "{% if true %}";
  out = RenderWith(ifs, json::object(), 0, &err);
  ASSERT_FALSE(out.ok());
}

TEST(Jinja, NoFileOrEnvironmentAccess) {
  for (const char* src : {"{% include 'x.j2' %}", "{% import 'x' as y %}", "{% extends 'base' %}"}) {
    TemplateErrorDetail err;
    EXPECT_FALSE(RenderWith(src, json::object(), 0, &err).ok()) << src;
  }
  // Names that would reach the host in Python simply do not exist.
  auto out = RenderWith("{{ os is defined }}{{ environ is defined }}{{ ''.__class__ is defined }}", json::object(), 0, nullptr);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, "FalseFalseFalse");
}

TEST(Jinja, ExtraVarsCannotShadowStandardOnes) {
  ChatTemplateInputs in;
  in.extra_vars = json{{"messages", 1}};
  EXPECT_FALSE(RenderChatTemplate("{{ messages }}", in).ok());
}

}  // namespace
}  // namespace spool::chat

// The Jinja interpreter's memory, depth and work limits (issue 20): hostile templates
// end with a LimitError (kResourceExhausted), never a crash or unbounded growth.
// Labelled "malformed": runs under ASan/UBSan in CI.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "chat/chat_template.h"

namespace spool::chat {
namespace {

using json = nlohmann::ordered_json;

Result<std::string> Render(const std::string& src, const jinja::Limits& limits = {}, TemplateErrorDetail* err = nullptr) {
  ChatTemplateInputs in;
  in.messages = json::array({{{"role", "user"}, {"content", "hi"}}});
  in.limits = limits;
  in.now_unix_seconds = 0;
  return RenderChatTemplate(src, in, err);
}

void ExpectLimit(const std::string& src, const std::string& what_in_message, const jinja::Limits& limits = {}) {
  TemplateErrorDetail err;
  auto r = Render(src, limits, &err);
  ASSERT_FALSE(r.ok()) << "rendered " << r->size() << " bytes: " << src;
  EXPECT_EQ(r.status().code(), ErrorCode::kResourceExhausted) << r.status().message();
  EXPECT_EQ(err.type, "LimitError") << r.status().message();
  EXPECT_NE(r.status().message().find(what_in_message), std::string::npos) << r.status().message();
}

TEST(JinjaLimits, ListDoublingHitsTheMemoryBudget) {
  // 40 doublings would be 2^40 items; the budget (256 MiB by default) stops it.
  ExpectLimit("{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}",
              "allocate");
}

TEST(JinjaLimits, StringDoublingHitsALimit) {
  TemplateErrorDetail err;
  auto r = Render("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s|length }}",
                  {}, &err);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(err.type, "LimitError");
}

TEST(JinjaLimits, HugeRepeatCountDoesNotOverflow) {
  ExpectLimit("{{ ('ab' * 4611686018427387904)|length }}", "larger");
  ExpectLimit("{{ ([1, 2] * 4611686018427387904)|length }}", "limit");
  ExpectLimit("{{ ([1, 2] * 100000000)|length }}", "allocate");
}

TEST(JinjaLimits, DeepListThenStringIsALimitErrorNotACrash) {
  // 100,000 nested lists (within the loop limit), then printed: depth guard.
  const std::string build = "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}";
  ExpectLimit(build + "{{ ns.x|string }}", "nested deeper");
  ExpectLimit(build + "{{ ns.x|tojson }}", "nested deeper");
  ExpectLimit(build + "{{ ns.x == ns.x[0] }}", "nested deeper");
  // Built but never printed: the render succeeds and tearing it down must not
  // overflow the stack.
  auto r = Render(build + "ok");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, "ok");
}

TEST(JinjaLimits, DeepNamespaceChainIsFreedIteratively) {
  auto r = Render(
      "{% set ns = namespace(cur=none) %}{% for i in range(100000) %}{% set ns.cur = namespace(prev=ns.cur) %}{% endfor %}done");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, "done");
}

TEST(JinjaLimits, SelfReferenceEndsAtTheDepthGuard) {
  ExpectLimit("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", "nested deeper");
  ExpectLimit("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns == ns.me }}{{ ns.me.me.me }}", "nested deeper");
}

TEST(JinjaLimits, SharedSublistsCannotPrintExponentially) {
  // 40 levels of [x, x]: 2^40 leaves from a few hundred bytes of values.
  const std::string build = "{% set ns = namespace(x=['leaf']) %}{% for i in range(40) %}{% set ns.x = [ns.x, ns.x] %}{% endfor %}";
  TemplateErrorDetail err;
  auto r = Render(build + "{{ ns.x|string|length }}", {}, &err);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(err.type, "LimitError") << r.status().message();
  r = Render(build + "{{ ns.x|tojson|length }}", {}, &err);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(err.type, "LimitError") << r.status().message();
  // Two equal DAGs built separately: comparing them visits 2^40 pairs.
  r = Render(build + "{% set ns.y = ['leaf'] %}{% for i in range(40) %}{% set ns.y = [ns.y, ns.y] %}{% endfor %}{{ ns.x == ns.y }}",
             {}, &err);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(err.type, "LimitError") << r.status().message();
}

TEST(JinjaLimits, StringBuildersCheckWhileGrowing) {
  ExpectLimit("{{ ('a' * 1000000)|replace('a', 'b' * 1000000)|length }}", "larger");
  ExpectLimit("{{ ('x' * 100000)|replace('', 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy' * 10)|length }}", "larger");
  ExpectLimit("{{ ('x\n' * 100000)|indent(1000)|length }}", "larger");
  ExpectLimit("{{ 'a'|indent(10000000000000) }}", "larger");
  ExpectLimit("{{ ('{0}' * 1000000).format('z' * 1000) }}", "larger");
  // A huge index is an IndexError (jinja2's), not an uncaught C++ exception.
  TemplateErrorDetail err;
  auto r = Render("{{ '{99999999999999999999999}'.format(1) }}", {}, &err);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(err.type, "IndexError") << r.status().message();
}

TEST(JinjaLimits, SmallBudgetsAreEnforced) {
  jinja::Limits l;
  l.max_alloc_bytes = 1 << 20;
  ExpectLimit("{% set ns = namespace(s=[]) %}{% for i in range(100000) %}{% set ns.s = ns.s + [i] %}{% endfor %}", "allocate", l);
  jinja::Limits d;
  d.max_value_depth = 8;
  ExpectLimit("{{ [[[[[[[[[[1]]]]]]]]]]|tojson }}", "nested deeper", d);
  EXPECT_TRUE(Render("{{ [[[[[1]]]]]|tojson }}", d).ok());
}

TEST(JinjaLimits, InputsCountAgainstTheBudget) {
  ChatTemplateInputs in;
  in.messages = json::array({{{"role", "user"}, {"content", std::string(1 << 20, 'x')}}});
  in.limits.max_alloc_bytes = 512 << 10;
  auto r = RenderChatTemplate("{{ messages[0].content|length }}", in);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), ErrorCode::kResourceExhausted);
}

}  // namespace
}  // namespace spool::chat

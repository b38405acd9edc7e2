// libFuzzer entry point for the Jinja lexer/parser/evaluator. The input is used as a
// template and rendered with a small conversation under tight limits.
// Contract under test: any byte string parses and renders or fails with a Status;
// never a crash, a hang, or a sanitizer report. The memory, value-depth and
// value-visit limits (issue 20) are set small so that templates that double lists,
// nest values 100,000 deep or print shared sub-lists hit them within a run.
#include <cstddef>
#include <cstdint>
#include <string>

#include "chat/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string source(reinterpret_cast<const char*>(data), size);
  spool::chat::ChatTemplateInputs in;
  in.messages = nlohmann::ordered_json::parse(
      R"([{"role": "system", "content": "sys"}, {"role": "user", "content": "hi é"},
          {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
           "function": {"name": "f", "arguments": {"a": 1}}}]}])");
  in.tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {"name": "f"}}])");
  in.add_generation_prompt = true;
  in.bos_token = "<s>";
  in.now_unix_seconds = 0;
  in.limits.max_output_bytes = 1 << 20;
  in.limits.max_loop_iterations = 100000;
  in.limits.max_call_depth = 32;
  in.limits.max_nesting = 128;
  in.limits.max_alloc_bytes = 16 << 20;
  in.limits.max_value_depth = 64;
  in.limits.max_value_visits = 200000;
  auto out = spool::chat::RenderChatTemplate(source, in);
  (void)out;
  return 0;
}

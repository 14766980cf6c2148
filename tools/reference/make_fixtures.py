#!/usr/bin/env python3
"""Produces the parity fixtures under tests/fixtures/ with PyTorch, transformers and tokenizers.

Run on a machine that has them (the GPU machine does; no GPU is needed):
    python3 tools/reference/make_fixtures.py --out tests/fixtures

What it writes (every number below is produced here, never typed in by hand):
  models/<name>/      tiny random-weight models of every supported family, RoPE type and weight dtype:
                      config.json, *.safetensors, generation_config.json and expected.json with the prompt ids,
                      the logits of every prompt position (logits.f32, raw little-endian f32, shape T x V) and the
                      greedy continuation computed by the model's own KV-cached forward.
  tokenizers/<name>/  tokenizers trained here from scratch (byte-level BPE; SentencePiece-style BPE with byte
                      fallback) and cases.json: encode with and without special tokens, decode, over a corpus of
                      ASCII, whitespace runs, digits, CJK, emoji, combining marks and special tokens.
  chat/<name>/        tokenizer_config.json with a chat template (tools/reference/templates/*.jinja) and
                      cases.json with transformers' apply_chat_template renderings.
"""
import argparse
import json
import os
import random
import shutil
import sys
import tempfile

import torch
import transformers
import tokenizers
from tokenizers import Tokenizer, Regex, decoders, models, normalizers, pre_tokenizers, processors, trainers
from tokenizers import AddedToken

VOCAB = 448
PROMPT_LEN = 100
NEW_TOKENS = 16
HERE = os.path.dirname(os.path.abspath(__file__))

# Qwen2 / Llama 3 style pre-tokenizer split.
QWEN_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")

WORDS = ("the a of to and in is it that for on was with as by at from this be are or an have not they which one "
         "you had her his but all we can there been if more when will would who so no long document summary model "
         "cache page token attention layer actor silo grain session memory device kernel prefill decode batch "
         "river mountain city history science music language system network storage question answer chapter "
         "report meeting policy market energy water people time year day world house light story").split()


def corpus(rng, n):
    lines = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 18))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 99999)))
        s = " ".join(words)
        s = s[0].upper() + s[1:] + rng.choice([".", ",", "!", "?", ";", ":"])
        if rng.random() < 0.2:
            s = s.replace(" ", "  ", 1)
        if rng.random() < 0.1:
            s += " I'm sure you'll see it's done."
        lines.append(s)
    return lines


TEST_STRINGS = [
    "",
    "Hello world",
    "Hello world!",
    " leading space",
    "  two leading spaces and trailing  ",
    "a  b\t\tc\n\n\nd   ",
    "line one\r\nline two\rline three\n",
    "1234567 3.14159 -42 1,000,000",
    "I'm you'll WE'RE they've she'd it's",
    "你好，世界。日本語のテキストです。",
    "한국어 문장",
    "emoji 👋🌍 and a flag 🏳️‍🌈 end",
    "e\u0301 cafe\u0301 n\u0303 A\u030a",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 astral 𝟘𝟙𝟚",
    "mixed: The summary of chapter 12 is 很好 👍!",
    "tabs\tand\u00a0nbsp\u2003em-space",
    "punctuation!!! ??? ... ---",
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n",
    "<s>hello</s> <unk> <s> </s>",
    "text with <think> an added token </think> inside",
    "<|endoftext|>",
    "the cache page token attention layer actor silo grain session memory device kernel",
    "    indented code:\n        return x + 1\n",
    "ÀÉÎÕÜ àéîõü ß ø œ",
    "\u200bzero\u200bwidth",
]


def train_bytelevel(rng):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - 16, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus(rng, 3000), trainer)
    tok.add_tokens([AddedToken("<think>", normalized=False, special=False),
                    AddedToken("</think>", normalized=False, special=False)])
    config = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
              "model_max_length": 32768, "tokenizer_class": "Qwen2TokenizerFast", "add_bos_token": False}
    return tok, config


def train_sentencepiece(rng):
    # Train words split on spaces (SentencePiece never merges across a word start), then assemble the
    # Llama 2 / Mistral layout: <unk>, <s>, </s>, the 256 byte tokens, then the learned pieces.
    base = Tokenizer(models.BPE(unk_token="<unk>"))
    base.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    base.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never")
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - 259, special_tokens=["<unk>"], limit_alphabet=60, show_progress=False)
    base.train_from_iterator(corpus(rng, 3000), trainer)
    learned = json.loads(base.to_str())["model"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for piece, _ in sorted(learned["vocab"].items(), key=lambda kv: kv[1]):
        if piece not in vocab:
            vocab[piece] = len(vocab)
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in learned["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.add_special_tokens([AddedToken("<unk>", normalized=False), AddedToken("<s>", normalized=False),
                            AddedToken("</s>", normalized=False)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)])
    config = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
              "model_max_length": 32768, "tokenizer_class": "LlamaTokenizerFast"}
    return tok, config


def write_tokenizer(out, name, tok, config):
    d = os.path.join(out, "tokenizers", name)
    os.makedirs(d, exist_ok=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
    cases = []
    for text in TEST_STRINGS:
        ids = tok.encode(text, add_special_tokens=False).ids
        ids_sp = tok.encode(text, add_special_tokens=True).ids
        cases.append({"text": text, "ids": ids, "ids_with_special": ids_sp,
                      "decoded": tok.decode(ids, skip_special_tokens=False),
                      "decoded_skip": tok.decode(ids_sp, skip_special_tokens=True)})
    with open(os.path.join(d, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
    print(f"tokenizer {name}: vocab {tok.get_vocab_size()}, {len(cases)} cases")


# ----------------------------------------------------------------------------------------------------- chat
CHAT_TEMPLATES = {
    "llama3": {"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"},
    "qwen2_5": {"bos_token": None, "eos_token": "<|im_end|>"},
    "mistral": {"bos_token": "<s>", "eos_token": "</s>"},
    "system_prompt": {"bos_token": "<s>", "eos_token": "</s>"},
}

CONVERSATIONS = [
    [{"role": "user", "content": "Summarize this document, please."}],
    [{"role": "system", "content": "You are a concise summarizer."},
     {"role": "user", "content": "  What is in chapter 3?  "}],
    [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi! How can I help?"},
     {"role": "user", "content": "Tell me a secret about \"quotes\" and 'apostrophes'\nand newlines."}],
    [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "What is 2+2?"},
     {"role": "assistant", "content": "Quatre."}, {"role": "user", "content": "And 3+3? 你好 👋"}],
    [{"role": "user", "content": "one"}, {"role": "user", "content": "two in a row"}],
    [{"role": "system", "content": "sys"}, {"role": "tool", "content": "bad role"}],
]


def write_chat(out, tok, name):
    try:
        from transformers import PreTrainedTokenizerFast
    except ImportError:
        from transformers import TokenizersBackend as PreTrainedTokenizerFast
    template = open(os.path.join(HERE, "templates", f"{name}.jinja"), encoding="utf-8").read()
    special = CHAT_TEMPLATES[name]
    d = os.path.join(out, "chat", name)
    os.makedirs(d, exist_ok=True)
    config = {"chat_template": template, "bos_token": special["bos_token"], "eos_token": special["eos_token"]}
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config, f, ensure_ascii=False, indent=2)
    kwargs = {k: v for k, v in special.items() if v is not None}
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, chat_template=template, **kwargs)
    cases = []
    for messages in CONVERSATIONS:
        for agp in (False, True):
            case = {"messages": messages, "add_generation_prompt": agp}
            try:
                case["rendered"] = hf.apply_chat_template(messages, tokenize=False, add_generation_prompt=agp)
            except Exception as e:  # templates raise for conversations they refuse; our renderer must too
                case["error"] = str(e)
            cases.append(case)
    with open(os.path.join(d, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
    print(f"chat {name}: {sum('rendered' in c for c in cases)} rendered, {sum('error' in c for c in cases)} errors")
    return template


# --------------------------------------------------------------------------------------------------- models
def base_config(family, **over):
    cfg = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-6, initializer_range=0.08,
               bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    if family == "qwen3":
        cfg["head_dim"] = 32
    cfg.update(over)
    return cfg


def rope(kind, theta=10000.0, **fields):
    p = {"rope_type": kind, "rope_theta": theta}
    p.update(fields)
    return p


# name -> (family, config overrides, rope parameters, stored dtype, shard)
MODELS = {
    "llama-default": ("llama", {}, rope("default"), "float32", False),
    "llama-linear": ("llama", {}, rope("linear", factor=4.0), "float32", False),
    "llama-dynamic": ("llama", {}, rope("dynamic", factor=2.0), "float32", False),
    "llama-yarn": ("llama", {"max_position_embeddings": 128},
                   rope("yarn", factor=4.0, original_max_position_embeddings=32), "float32", False),
    "llama-llama3": ("llama", {"max_position_embeddings": 256},
                     rope("llama3", 500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                          original_max_position_embeddings=32), "float32", False),
    "mistral": ("mistral", {"sliding_window": None, "max_position_embeddings": 256}, rope("default", 1000000.0),
                "float32", False),
    "qwen2": ("qwen2", {"tie_word_embeddings": True, "max_position_embeddings": 512, "eos_token_id": None,
                        "bos_token_id": None}, rope("default", 1000000.0), "float32", False),
    "qwen3": ("qwen3", {"max_position_embeddings": 256}, rope("default", 1000000.0), "float32", False),
    "llama-bf16": ("llama", {"max_position_embeddings": 256}, rope("default"), "bfloat16", False),
    "llama-f16": ("llama", {"max_position_embeddings": 256}, rope("default"), "float16", False),
    "llama-sharded": ("llama", {"max_position_embeddings": 256, "num_hidden_layers": 3}, rope("default"), "float32", True),
}

CLASSES = {
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
    "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
    "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM),
}


def make_config(family, over, rope_params):
    cfg_cls, _ = CLASSES[family]
    kwargs = base_config(family, **over)
    try:
        cfg = cfg_cls(**kwargs, rope_parameters=rope_params)
    except TypeError:
        legacy = {k: v for k, v in rope_params.items() if k != "rope_theta"}
        cfg = cfg_cls(**kwargs, rope_theta=rope_params["rope_theta"],
                      rope_scaling=None if legacy["rope_type"] == "default" else legacy)
    return cfg


def greedy(model, ids, n):
    """Greedy continuation through the model's own KV-cached forward, one token per call (as generate does)."""
    from transformers import DynamicCache
    try:
        cache = DynamicCache(config=model.config)
    except TypeError:
        cache = DynamicCache()
    out = model(input_ids=ids, past_key_values=cache, use_cache=True)
    result = []
    nxt = int(out.logits[0, -1].argmax())
    for _ in range(n):
        result.append(nxt)
        out = model(input_ids=torch.tensor([[nxt]], device=ids.device), past_key_values=out.past_key_values, use_cache=True)
        nxt = int(out.logits[0, -1].argmax())
    return result


def perturb(model, gen):
    """Norm weights and biases away from their 1/0 init, so that a bug in either shows in the logits."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif name.endswith(".bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))


def write_model(out, name, spec, seed, extras):
    family, over, rope_params, dtype, shard = spec
    torch.manual_seed(seed)
    cfg = make_config(family, over, rope_params)
    cfg._attn_implementation = "eager"
    model = CLASSES[family][1](cfg).eval()
    perturb(model, torch.Generator().manual_seed(seed + 1))
    store = getattr(torch, dtype)
    with torch.no_grad():  # the weights hold exactly the values the stored dtype can represent
        for p in model.parameters():
            p.copy_(p.to(store).to(torch.float32))
    d = os.path.join(out, "models", name)
    os.makedirs(d, exist_ok=True)
    save_model = model if dtype == "float32" else CLASSES[family][1](cfg).eval().to(store)
    if save_model is not model:
        save_model.load_state_dict({k: v.to(store) for k, v in model.state_dict().items()})
    save_kwargs = {"max_shard_size": "60KB"} if shard else {}
    save_model.save_pretrained(d, **save_kwargs)
    if name == "llama-linear":  # keep one model in the transformers-4 config form (rope_theta + rope_scaling)
        path = os.path.join(d, "config.json")
        c = json.load(open(path))
        rp = c.pop("rope_parameters", None)
        if rp is not None:
            c["rope_theta"] = rp.pop("rope_theta")
            c["rope_scaling"] = {"type": rp.pop("rope_type"), **rp}
        json.dump(c, open(path, "w"), indent=2)
    for fname, content in extras.items():
        with open(os.path.join(d, fname), "w", encoding="utf-8") as f:
            f.write(content)
    rng = random.Random(seed)
    prompt = [rng.randrange(3, VOCAB) for _ in range(PROMPT_LEN)]
    ids = torch.tensor([prompt])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].to(torch.float32).contiguous()
        cont = greedy(model, ids, NEW_TOKENS)
    logits.numpy().astype("<f4").tofile(os.path.join(d, "logits.f32"))
    expected = {"prompt_ids": prompt, "logits_file": "logits.f32", "logits_shape": list(logits.shape),
                "greedy_ids": cont, "family": family, "stored_dtype": dtype,
                "rope_parameters": rope_params}
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f)
    files = sorted(os.listdir(d))
    print(f"model {name}: {family} {dtype} files={files} greedy={cont[:8]}...")


def add_bf16_references(fixtures):
    """For each model fixture: transformers' own bf16 run (weights and activations in bf16, eager attention, on CUDA
    when present) of the same prompt. It is the "same-precision naive implementation" a bf16 engine is judged
    against: a bf16 engine may be at most about as far from the f32 logits as transformers in bf16 is."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    root = os.path.join(fixtures, "models")
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)
        exp_path = os.path.join(d, "expected.json")
        expected = json.load(open(exp_path))
        model = transformers.AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16, attn_implementation="eager").to(device).eval()
        ids = torch.tensor([expected["prompt_ids"]], device=device)
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0].to(torch.float32).cpu().contiguous()
            cont = greedy(model, ids, len(expected["greedy_ids"]))
        logits.numpy().astype("<f4").tofile(os.path.join(d, "logits_bf16.f32"))
        expected["logits_bf16_file"] = "logits_bf16.f32"
        expected["greedy_ids_bf16"] = cont
        expected["bf16_device"] = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
        with open(exp_path, "w") as f:
            json.dump(expected, f)
        ref = torch.from_numpy(__import__("numpy").fromfile(os.path.join(d, "logits.f32"), dtype="<f4")).view(logits.shape)
        rel = ((logits - ref).abs().max(dim=1).values / ref.abs().max(dim=1).values).max().item()
        agree = (logits.argmax(dim=1) == ref.argmax(dim=1)).float().mean().item()
        print(f"bf16 {name}: worst row relative error {rel:.3e}, argmax agreement {agree:.2%}, "
              f"greedy same as f32: {cont == expected['greedy_ids']}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--bf16-only", action="store_true",
                    help="only add transformers' bf16 logits and greedy ids to the existing model fixtures in --out")
    args = ap.parse_args()
    out = args.out
    if args.bf16_only:
        add_bf16_references(out)
        return
    if os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out)
    torch.set_num_threads(4)
    rng = random.Random(1234)
    bl, bl_cfg = train_bytelevel(rng)
    sp, sp_cfg = train_sentencepiece(rng)
    write_tokenizer(out, "bytelevel", bl, bl_cfg)
    write_tokenizer(out, "sentencepiece", sp, sp_cfg)
    qwen_template = None
    for name in CHAT_TEMPLATES:
        tpl = write_chat(out, bl, name)
        if name == "qwen2_5":
            qwen_template = tpl
    # The qwen2 model is usable end to end: the byte-level tokenizer and the Qwen2.5 chat template ride along.
    qwen_extras = {
        "tokenizer.json": bl.to_str(),
        "tokenizer_config.json": json.dumps({**bl_cfg, "chat_template": qwen_template}, ensure_ascii=False, indent=2),
    }
    for i, (name, spec) in enumerate(MODELS.items()):
        extras = qwen_extras if name == "qwen2" else {}
        write_model(out, name, spec, 100 + i, extras)
    # The qwen2 model's generation config names <|im_end|> as its end of turn.
    gc_path = os.path.join(out, "models", "qwen2", "generation_config.json")
    gc = json.load(open(gc_path)) if os.path.exists(gc_path) else {}
    gc["eos_token_id"] = [bl.token_to_id("<|im_end|>"), bl.token_to_id("<|endoftext|>")]
    json.dump(gc, open(gc_path, "w"), indent=2)
    with open(os.path.join(out, "VERSIONS.json"), "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                   "tokenizers": tokenizers.__version__, "python": sys.version.split()[0]}, f, indent=2)
    add_bf16_references(out)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
    print(f"fixtures: {total / 1e6:.2f} MB in {out}")


if __name__ == "__main__":
    main()

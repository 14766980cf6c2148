using System.Numerics.Tensors;
using Actors.Engine.Paging;
using Actors.Kernels.Cpu;

namespace Actors.Engine.Model;

/// <summary>Which rows of logits a chunk asks for.</summary>
public enum LogitsRows { None, Last, All }

/// <summary>
/// New tokens of one sequence in a forward step: a prefill chunk or a single decode token.
/// Tokens[i] sits at position FirstPosition + i; positions 0..FirstPosition-1 must already be in the sequence's pages.
/// PageTable must cover position FirstPosition + Tokens.Length - 1. RopeSeqLen is the sequence length that picks the
/// RoPE frequencies (only dynamic scaling depends on it): the whole prompt's length for prefill chunks, position+1
/// when decoding.
/// </summary>
public readonly record struct ForwardChunk(ReadOnlyMemory<int> Tokens, int FirstPosition, ReadOnlyMemory<int> PageTable, int RopeSeqLen, LogitsRows Rows = LogitsRows.Last)
{
    /// <summary>The logits rows the chunk asks for: none, its last token, or all its tokens.</summary>
    public int LogitsRowCount => Rows switch { LogitsRows.None => 0, LogitsRows.Last => 1, _ => Tokens.Length };

    /// <summary>The chunk's token (index into Tokens) of its first logits row: the last token for Last, else 0.</summary>
    public int FirstLogitsToken => Rows == LogitsRows.Last ? Tokens.Length - 1 : 0;
}

/// <summary>
/// Llama-family decoder (Llama 2/3, Mistral, Qwen2 with q/k/v bias, Qwen3 with q/k norm) in f32 over the paged KV
/// pool: pre-norm attention with grouped-query heads and RoPE, SwiGLU MLP, residuals, final RMSNorm, lm_head.
/// Every matrix product of a step runs once over the tokens of all sequences in the step (rows = total tokens).
/// Not thread-safe: one engine loop drives it.
/// </summary>
public sealed class Transformer
{
    private sealed record Layer(
        float[] InputNorm, float[] Wq, float[] Bq, float[] Wk, float[] Bk, float[] Wv, float[] Bv, float[] Wo, float[] Bo,
        float[] QNorm, float[] KNorm, float[] PostNorm, float[] Gate, float[] Up, float[] Down);

    private readonly Layer[] _layers;
    private readonly float[] _embed;   // (vocab, hidden)
    private readonly float[] _norm;    // (hidden)
    private readonly float[] _lmHead;  // (vocab, hidden); the embedding when tied
    private readonly RopeTable _ropeTable;
    private readonly float[][] _scratch = Enumerable.Repeat(Array.Empty<float>(), 10).ToArray();

    public Transformer(ModelConfig config, IWeightSource weights)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        Validate(config);
        Config = config;
        long h = config.HiddenSize, inter = config.IntermediateSize, d = config.HeadDim;
        long qDim = config.NumHeads * d, kvDim = config.NumKvHeads * d;
        _embed = weights.ReadFloat32("model.embed_tokens.weight", config.VocabSize, h);
        _norm = weights.ReadFloat32("model.norm.weight", h);
        _lmHead = config.TieWordEmbeddings ? _embed : weights.ReadFloat32("lm_head.weight", config.VocabSize, h);
        _layers = new Layer[config.NumLayers];
        for (int i = 0; i < config.NumLayers; i++)
        {
            string p = $"model.layers.{i}.";
            float[] Read(string name, params long[] shape) => weights.ReadFloat32(p + name, shape);
            float[] Bias(bool present, string name, long n) => present ? Read(name, n) : [];
            _layers[i] = new Layer(
                InputNorm: Read("input_layernorm.weight", h),
                Wq: Read("self_attn.q_proj.weight", qDim, h), Bq: Bias(config.AttentionBias, "self_attn.q_proj.bias", qDim),
                Wk: Read("self_attn.k_proj.weight", kvDim, h), Bk: Bias(config.AttentionBias, "self_attn.k_proj.bias", kvDim),
                Wv: Read("self_attn.v_proj.weight", kvDim, h), Bv: Bias(config.AttentionBias, "self_attn.v_proj.bias", kvDim),
                Wo: Read("self_attn.o_proj.weight", h, qDim), Bo: Bias(config.OutputBias, "self_attn.o_proj.bias", h),
                QNorm: config.QkNorm ? Read("self_attn.q_norm.weight", d) : [],
                KNorm: config.QkNorm ? Read("self_attn.k_norm.weight", d) : [],
                PostNorm: Read("post_attention_layernorm.weight", h),
                Gate: Read("mlp.gate_proj.weight", inter, h),
                Up: Read("mlp.up_proj.weight", inter, h),
                Down: Read("mlp.down_proj.weight", h, inter));
        }
        _ropeTable = new RopeTable(config);
    }

    public ModelConfig Config { get; }

    /// <summary>
    /// Whether a step asking for fewer logits rows than it has tokens runs its last layer past the KV write on those
    /// rows alone (nothing else reads that layer's output): a chunk without logits stops at its K and V, a chunk asking
    /// for its last token attends with that row only. Same values for the rows asked for (default true;
    /// ACTORS_TRIM_LAST_LAYER=0 turns it off, as on CUDA).
    /// </summary>
    public bool TrimLastLayer { get; set; } = Environment.GetEnvironmentVariable("ACTORS_TRIM_LAST_LAYER") != "0";

    /// <summary>Steps that ran their last layer on the logits rows alone (<see cref="TrimLastLayer"/>).</summary>
    public long TrimmedSteps { get; private set; }

    /// <summary>The KV layout this model needs for pages of <paramref name="pageSize"/> tokens.</summary>
    public KvLayout KvLayout(int pageSize) => new(pageSize, Config.NumLayers, Config.NumKvHeads, Config.HeadDim);

    /// <summary>
    /// Identity of the RoPE frequencies a prefill of <paramref name="seqLen"/> tokens uses, beyond the model's RoPE
    /// profile: empty unless they depend on the length (dynamic NTK), else a digest of the frequencies themselves.
    /// </summary>
    public string RopeVariant(int seqLen) => Rope(seqLen).Variant;

    /// <summary>
    /// Runs one step: writes every chunk's K and V into its pages, attends, and returns the logits asked for,
    /// (rows, vocab) row-major, chunks in order (per chunk: none, its last token, or all its tokens).
    /// </summary>
    public float[] Forward(IReadOnlyList<ForwardChunk> batch, KvCache cache)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(cache);
        var cfg = Config;
        var layout = cache.Layout;
        if (layout.Layers != cfg.NumLayers || layout.KvHeads != cfg.NumKvHeads || layout.HeadDim != cfg.HeadDim)
            throw new ArgumentException($"KV cache layout {layout} does not fit the model (layers {cfg.NumLayers}, kv heads {cfg.NumKvHeads}, head dim {cfg.HeadDim})", nameof(cache));
        int n = 0, outRows = 0;
        for (int c = 0; c < batch.Count; c++)
        {
            var ch = batch[c];
            if (ch.Tokens.Length == 0) throw new ArgumentException($"chunk {c} has no tokens", nameof(batch));
            if (ch.FirstPosition < 0) throw new ArgumentException($"chunk {c} starts at negative position {ch.FirstPosition}", nameof(batch));
            long last = ch.FirstPosition + ch.Tokens.Length - 1;
            if ((long)ch.PageTable.Length * layout.PageSize <= last)
                throw new ArgumentException($"chunk {c}: page table of {ch.PageTable.Length} pages does not cover position {last}", nameof(batch));
            n += ch.Tokens.Length;
            outRows += ch.LogitsRowCount;
        }
        int hid = cfg.HiddenSize, d = cfg.HeadDim, nh = cfg.NumHeads, nkv = cfg.NumKvHeads, inter = cfg.IntermediateSize;
        int qDim = nh * d, kvDim = nkv * d, half = d / 2;
        float eps = cfg.RmsNormEps, scale = 1f / MathF.Sqrt(d);

        // Step buffers are kept between steps (grown to the largest step seen) so big prefill chunks do not
        // churn the large-object heap.
        var x = Scratch(0, n * hid);       // (tokens, hidden) residual stream
        var hbuf = Scratch(1, n * hid);    // (tokens, hidden) normed input / projection output
        var q = Scratch(2, n * qDim);      // (tokens, heads, headDim)
        var k = Scratch(3, n * kvDim);     // (tokens, kvHeads, headDim)
        var v = Scratch(4, n * kvDim);
        var attn = Scratch(5, n * qDim);   // (tokens, heads, headDim)
        var gate = Scratch(6, n * inter);  // (tokens, intermediate)
        var up = Scratch(7, n * inter);
        var cos = Scratch(8, n * half);    // (tokens, headDim/2)
        var sin = Scratch(9, n * half);

        var starts = new int[batch.Count]; // first row of each chunk
        for (int c = 1; c < batch.Count; c++) starts[c] = starts[c - 1] + batch[c - 1].Tokens.Length;

        // Embedding and RoPE tables, once per step for all layers.
        int row = 0;
        for (int c = 0; c < batch.Count; c++)
        {
            var ch = batch[c];
            var toks = ch.Tokens.Span;
            var positions = new int[toks.Length];
            for (int t = 0; t < toks.Length; t++)
            {
                int id = toks[t];
                if ((uint)id >= (uint)cfg.VocabSize) throw new ArgumentException($"chunk {c}, token {t}: id {id} is outside the vocabulary (size {cfg.VocabSize})", nameof(batch));
                _embed.AsSpan(id * hid, hid).CopyTo(x.Slice((row + t) * hid, hid));
                positions[t] = ch.FirstPosition + t;
            }
            var rope = Rope(ch.RopeSeqLen);
            RopeFrequencies.CosSin(rope.InvFreq, rope.Scaling, positions, cos.Slice(row * half, toks.Length * half), sin.Slice(row * half, toks.Length * half));
            row += toks.Length;
        }

        var pool = cache.Pool;
        bool trim = TrimLastLayer && outRows < n;
        if (trim) TrimmedSteps++;
        float[]? selected = null;
        for (int li = 0; li < _layers.Length; li++)
        {
            var L = _layers[li];
            RmsNorm.Compute(x, L.InputNorm, hbuf, n, hid, eps);
            MatMul.Compute(hbuf, L.Wq, L.Bq, q, n, hid, qDim);
            MatMul.Compute(hbuf, L.Wk, L.Bk, k, n, hid, kvDim);
            MatMul.Compute(hbuf, L.Wv, L.Bv, v, n, hid, kvDim);
            if (cfg.QkNorm)
            {
                // Qwen3: RMSNorm over head_dim of every head, before RoPE.
                RmsNorm.Compute(q, L.QNorm, q, n * nh, d, eps);
                RmsNorm.Compute(k, L.KNorm, k, n * nkv, d, eps);
            }
            Kernels.Cpu.Rope.Compute(q, n, nh, d, cos, sin);
            Kernels.Cpu.Rope.Compute(k, n, nkv, d, cos, sin);

            for (int c = 0; c < batch.Count; c++)
            {
                var ch = batch[c];
                var table = ch.PageTable.Span;
                for (int t = 0; t < ch.Tokens.Length; t++)
                {
                    int pos = ch.FirstPosition + t, r = starts[c] + t;
                    cache.Write(li, table[pos / layout.PageSize], pos % layout.PageSize, k.Slice(r * kvDim, kvDim), v.Slice(r * kvDim, kvDim));
                }
            }
            if (trim && li == _layers.Length - 1)
            {
                // The logits rows alone: their residual rows and attention, in the logits' order, then the rest.
                selected = new float[outRows * hid];
                var selAttn = new float[outRows * qDim];
                int sel = 0;
                for (int c = 0; c < batch.Count; c++)
                {
                    var ch = batch[c];
                    int rows = ch.LogitsRowCount, first = ch.FirstLogitsToken, r = starts[c] + first;
                    if (rows == 0) continue;
                    x.Slice(r * hid, rows * hid).CopyTo(selected.AsSpan(sel * hid));
                    PagedAttention.Compute(q.Slice(r * qDim, rows * qDim), rows, nh, ch.FirstPosition + first, pool, layout, li,
                        ch.PageTable.Span, scale, selAttn.AsSpan(sel * qDim, rows * qDim));
                    sel += rows;
                }
                if (outRows > 0) AttentionOutputAndMlp(L, selAttn, selected, hbuf, gate, up, outRows);
                break;
            }
            if (batch.Count == 1)
                PagedAttention.Compute(q, n, nh, batch[0].FirstPosition, pool, layout, li, batch[0].PageTable.Span, scale, attn);
            else
            {
                // Sequences attend independently (all K/V of the step is written above): one task per sequence, so a
                // step of many single-token decodes is not one thread's loop.
                var qAll = _scratch[2];
                var attnAll = _scratch[5];
                int layer = li;
                Parallel.For(0, batch.Count, c =>
                {
                    var ch = batch[c];
                    int len = ch.Tokens.Length;
                    PagedAttention.Compute(qAll.AsSpan(starts[c] * qDim, len * qDim), len, nh, ch.FirstPosition, pool, layout, layer,
                        ch.PageTable.Span, scale, attnAll.AsSpan(starts[c] * qDim, len * qDim));
                });
            }

            AttentionOutputAndMlp(L, attn, x, hbuf, gate, up, n);
        }

        // Final norm and lm_head only over the rows asked for.
        if (selected is null)
        {
            selected = new float[outRows * hid];
            int sel = 0;
            for (int c = 0; c < batch.Count; c++)
            {
                int rows = batch[c].LogitsRowCount;
                x.Slice((starts[c] + batch[c].FirstLogitsToken) * hid, rows * hid).CopyTo(selected.AsSpan(sel * hid));
                sel += rows;
            }
        }
        var logits = new float[(long)outRows * cfg.VocabSize];
        if (outRows == 0) return logits;
        RmsNorm.Compute(selected, _norm, selected, outRows, hid, eps);
        MatMul.Compute(selected, _lmHead, ReadOnlySpan<float>.Empty, logits, outRows, hid, cfg.VocabSize);
        return logits;
    }

    /// <summary>x += o(attn); x += down(swiglu(gate, up of norm(x))) over <paramref name="rows"/> rows.</summary>
    private void AttentionOutputAndMlp(Layer L, Span<float> attn, Span<float> x, Span<float> hbuf, Span<float> gate, Span<float> up, int rows)
    {
        var c = Config;
        int hid = c.HiddenSize, qDim = c.NumHeads * c.HeadDim, inter = c.IntermediateSize;
        x = x[..(rows * hid)];
        hbuf = hbuf[..(rows * hid)];
        gate = gate[..(rows * inter)];
        up = up[..(rows * inter)];
        MatMul.Compute(attn, L.Wo, L.Bo, hbuf, rows, qDim, hid);
        TensorPrimitives.Add(x, hbuf, x);

        RmsNorm.Compute(x, L.PostNorm, hbuf, rows, hid, c.RmsNormEps);
        MatMul.Compute(hbuf, L.Gate, ReadOnlySpan<float>.Empty, gate, rows, hid, inter);
        MatMul.Compute(hbuf, L.Up, ReadOnlySpan<float>.Empty, up, rows, hid, inter);
        SwiGlu.Compute(gate, up, gate);
        MatMul.Compute(gate, L.Down, ReadOnlySpan<float>.Empty, hbuf, rows, inter, hid);
        TensorPrimitives.Add(x, hbuf, x);
    }

    private Span<float> Scratch(int slot, int length)
    {
        ref var buffer = ref _scratch[slot];
        if (buffer.Length < length) buffer = new float[length];
        return buffer.AsSpan(0, length);
    }

    private (float[] InvFreq, float Scaling, string Variant) Rope(int seqLen)
    {
        var (inv, scaling) = _ropeTable.Frequencies(seqLen);
        return (inv, scaling, _ropeTable.Variant(seqLen));
    }

    private static void Validate(ModelConfig c)
    {
        void Fail(string field, string problem) => throw new ModelFormatException(c.Source, field, problem);
        if (c.HiddenSize <= 0) Fail("hidden_size", $"must be positive, is {c.HiddenSize}");
        if (c.IntermediateSize <= 0) Fail("intermediate_size", $"must be positive, is {c.IntermediateSize}");
        if (c.NumLayers <= 0) Fail("num_hidden_layers", $"must be positive, is {c.NumLayers}");
        if (c.NumHeads <= 0) Fail("num_attention_heads", $"must be positive, is {c.NumHeads}");
        if (c.NumKvHeads <= 0 || c.NumHeads % c.NumKvHeads != 0) Fail("num_key_value_heads", $"{c.NumKvHeads} does not divide num_attention_heads {c.NumHeads}");
        if (c.HeadDim <= 0 || c.HeadDim % 2 != 0) Fail("head_dim", $"must be positive and even for RoPE, is {c.HeadDim}");
        if (c.VocabSize <= 0) Fail("vocab_size", $"must be positive, is {c.VocabSize}");
    }
}

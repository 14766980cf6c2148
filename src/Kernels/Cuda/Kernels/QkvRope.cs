using System.Runtime.InteropServices;
using Actors.Kernels.Cpu;

namespace Actors.Kernels.Cuda.Kernels;

/// <summary>
/// Launcher and scalar reference of qkv_rope.cu: one launch per layer from the fused qkv GEMM output to attention's
/// inputs: q/k/v bias, q/k RMSNorm, RoPE on q and k (any scaling type: the cos/sin tables carry it) and the write of k
/// and v into the paged pool (<see cref="KvLayout"/>, bf16). bf16 as raw bits; f32 math, bf16 rounding after each step
/// as the separate kernels round.
/// </summary>
public sealed class QkvRopeKernels
{
    /// <summary>Largest head dimension (a warp's head lives in shared memory).</summary>
    public const int MaxHeadDim = 256;
    private const int Warps = 8;
    private readonly CudaFunction _fused, _fused128, _fused128Token;

    /// <summary>Tokens from which head dim 128 takes a block per token (qkv_rope_kv128t, 16-byte accesses, each lane's
    /// heads loaded at once) instead of a warp per head; a few decode rows keep the warp per head, which spreads them
    /// over more blocks.</summary>
    public const int TokenKernelMinTokens = 64;

    /// <summary>Heads (q, k and v) of a token that qkv_rope_kv128t takes: 16 half-warps, QKV_TOKEN_HEADS each.</summary>
    public const int TokenKernelMaxHeads = 64;

    public QkvRopeKernels(KernelCompiler compiler)
    {
        ArgumentNullException.ThrowIfNull(compiler);
        var module = compiler.Load(KernelSource.Load("qkv_rope.cu"), "qkv_rope.cu");
        _fused = module.Function("qkv_rope_kv");
        _fused128 = module.Function("qkv_rope_kv128");
        _fused128Token = module.Function("qkv_rope_kv128t");
        _fused.Programmatic = _fused128.Programmatic = _fused128Token.Programmatic = true; // PDL_ENTER in each
    }

    /// <summary>
    /// From <paramref name="qkv"/> (tokens rows, <paramref name="stride"/> apart: q heads, k heads, v heads) writes q
    /// (tokens, heads · headDim) and layer <paramref name="layer"/>'s K and V at global slot slots[t] = page · pageSize +
    /// slot of <paramref name="pool"/>. <paramref name="bias"/> ((heads + 2 kvHeads) · headDim) and the norm weights
    /// (headDim each, both or neither) may be default spans (absent). cos, sin: (tableRows, headDim / 2); token t uses
    /// row positions[t] (a default span: row t). Device positions and slots are not checked here.
    /// </summary>
    public void Apply(CudaStream stream, DeviceSpan<ushort> qkv, int tokens, int stride, int heads, int kvHeads, int headDim,
        DeviceSpan<ushort> bias, DeviceSpan<ushort> qNorm, DeviceSpan<ushort> kNorm, float eps,
        DeviceSpan<float> cos, DeviceSpan<float> sin, int tableRows, DeviceSpan<int> positions, DeviceSpan<int> slots,
        DeviceSpan<ushort> q, DeviceSpan<ushort> pool, KvLayout layout, int layer)
    {
        ArgumentNullException.ThrowIfNull(stream);
        int half = Check(tokens, stride, heads, kvHeads, headDim, bias.Pointer != 0, qNorm.Pointer != 0, kNorm.Pointer != 0, tableRows,
            positions.Pointer != 0, layout, layer);
        if (tokens == 0) return;
        int width = (heads + 2 * kvHeads) * headDim;
        qkv.Require((long)(tokens - 1) * stride + width, nameof(qkv), "(tokens - 1) * stride + (heads + 2 kvHeads) * headDim");
        if (bias.Pointer != 0) bias.Require(width, nameof(bias), "(heads + 2 kvHeads) * headDim");
        if (qNorm.Pointer != 0) { qNorm.Require(headDim, nameof(qNorm), "headDim"); kNorm.Require(headDim, nameof(kNorm), "headDim"); }
        cos.Require((long)tableRows * half, nameof(cos), "tableRows * headDim / 2");
        sin.Require((long)tableRows * half, nameof(sin), "tableRows * headDim / 2");
        if (positions.Pointer != 0) positions.Require(tokens, nameof(positions), "tokens");
        slots.Require(tokens, nameof(slots), "tokens");
        q.Require((long)tokens * heads * headDim, nameof(q), "tokens * heads * headDim");
        pool.Require(layout.PageStride, nameof(pool), "one page");
        var p = new QkvRopeParams
        {
            Qkv = qkv.Pointer, Bias = bias.Pointer, QNorm = qNorm.Pointer, KNorm = kNorm.Pointer, Cos = cos.Pointer, Sin = sin.Pointer,
            Positions = positions.Pointer, Slots = slots.Pointer, Q = q.Pointer, Kv = pool.Pointer,
            PageStride = layout.PageStride, LayerOffset = (long)layer * layout.LayerStride,
            Tokens = tokens, Stride = stride, Heads = heads, KvHeads = kvHeads, HeadDim = headDim, PageSize = layout.PageSize,
            TokenStride = layout.TokenStride, Eps = eps,
        };
        ulong pointers = qkv.Pointer | bias.Pointer | qNorm.Pointer | kNorm.Pointer | q.Pointer | pool.Pointer | cos.Pointer | sin.Pointer;
        if (headDim == 128 && tokens >= TokenKernelMinTokens && heads + 2 * kvHeads <= TokenKernelMaxHeads && stride % 8 == 0 && pointers % 16 == 0)
        {
            _fused128Token.Launch(stream, ((uint)tokens, 1, 1), 256, 0, p);
            return;
        }
        long warps = (long)tokens * (heads + 2 * kvHeads);
        // head dim 128 with 8-byte accesses when every row and pointer allows them
        bool wide = headDim == 128 && stride % 4 == 0 && (qkv.Pointer | bias.Pointer | qNorm.Pointer | kNorm.Pointer | q.Pointer | pool.Pointer) % 8 == 0
            && (cos.Pointer | sin.Pointer) % 16 == 0;
        (wide ? _fused128 : _fused).Launch(stream, (checked((uint)((warps + Warps - 1) / Warps)), 1, 1), Warps * 32, 0, p);
    }

    private static int Check(int tokens, int stride, int heads, int kvHeads, int headDim, bool hasBias, bool hasQNorm, bool hasKNorm,
        int tableRows, bool hasPositions, KvLayout layout, int layer)
    {
        ElementwiseKernels.NonNegative(tokens, nameof(tokens));
        ElementwiseKernels.Positive(heads, nameof(heads));
        ElementwiseKernels.Positive(kvHeads, nameof(kvHeads));
        ElementwiseKernels.Positive(headDim, nameof(headDim));
        if (headDim > MaxHeadDim) throw new ArgumentOutOfRangeException(nameof(headDim), headDim, $"head dim above {MaxHeadDim}");
        if (stride < (heads + 2 * kvHeads) * headDim)
            throw new ArgumentOutOfRangeException(nameof(stride), stride, $"stride must be at least (heads + 2 kvHeads) * headDim = {(heads + 2 * kvHeads) * headDim}");
        if (hasQNorm != hasKNorm) throw new ArgumentException("q and k norm weights come together (both or neither)", nameof(hasQNorm));
        if (layout.KvHeads != kvHeads || layout.HeadDim != headDim)
            throw new ArgumentException($"layout has {layout.KvHeads} KV heads of {layout.HeadDim}, the step {kvHeads} of {headDim}", nameof(layout));
        if ((uint)layer >= (uint)layout.Layers) throw new ArgumentOutOfRangeException(nameof(layer), layer, $"layer outside [0, {layout.Layers})");
        if (!hasPositions && tableRows < tokens)
            throw new ArgumentOutOfRangeException(nameof(tableRows), tableRows, $"without positions the tables need a row per token ({tokens})");
        _ = hasBias;
        return headDim / 2;
    }

    /// <summary>
    /// qkv_rope.cu on the host, in the kernel's order and roundings: same arguments as <see cref="Apply"/> with host
    /// arrays (an empty bias / norm / positions span means absent); writes <paramref name="q"/> and the pool.
    /// </summary>
    public static void Reference(ReadOnlySpan<ushort> qkv, int tokens, int stride, int heads, int kvHeads, int headDim,
        ReadOnlySpan<ushort> bias, ReadOnlySpan<ushort> qNorm, ReadOnlySpan<ushort> kNorm, float eps,
        ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, int tableRows, ReadOnlySpan<int> positions, ReadOnlySpan<int> slots,
        Span<ushort> q, Span<ushort> pool, KvLayout layout, int layer)
    {
        int half = Check(tokens, stride, heads, kvHeads, headDim, !bias.IsEmpty, !qNorm.IsEmpty, !kNorm.IsEmpty, tableRows, !positions.IsEmpty, layout, layer);
        int d = headDim;
        var x = new float[d];
        for (int t = 0; t < tokens; t++)
        {
            int s = slots[t], page = s / layout.PageSize, slot = s % layout.PageSize;
            int row = positions.IsEmpty ? t : positions[t];
            if ((uint)row >= (uint)tableRows) throw new ArgumentOutOfRangeException(nameof(positions), row, $"token {t}: table row outside [0, {tableRows})");
            for (int h = 0; h < heads + 2 * kvHeads; h++)
            {
                var src = qkv.Slice(t * stride + h * d, d);
                for (int i = 0; i < d; i++)
                {
                    float v = Bf16.ToSingle(src[i]);
                    x[i] = bias.IsEmpty ? v : Bf16.ToSingle(Bf16.FromSingle(v + Bf16.ToSingle(bias[h * d + i])));
                }
                if (h >= heads + kvHeads)
                {
                    var dv = pool.Slice((int)layout.ValueOffset(page, layer, slot) + (h - heads - kvHeads) * d, d);
                    for (int i = 0; i < d; i++) dv[i] = Bf16.FromSingle(x[i]);
                    continue;
                }
                bool isQ = h < heads;
                var w = isQ ? qNorm : kNorm;
                if (!w.IsEmpty)
                {
                    float ss = 0;
                    for (int i = 0; i < d; i++) ss += x[i] * x[i];
                    float inv = 1f / MathF.Sqrt(ss / d + eps);
                    for (int i = 0; i < d; i++)
                        x[i] = Bf16.ToSingle(Bf16.FromSingle(Bf16.ToSingle(w[i]) * Bf16.ToSingle(Bf16.FromSingle(x[i] * inv))));
                }
                var dst = isQ ? q.Slice((t * heads + h) * d, d) : pool.Slice((int)layout.KeyOffset(page, layer, slot) + (h - heads) * d, d);
                for (int i = 0; i < half; i++)
                {
                    float c = cos[row * half + i], sn = sin[row * half + i];
                    float a = x[i], b = x[i + half];
                    dst[i] = Bf16.FromSingle(a * c - b * sn);
                    dst[i + half] = Bf16.FromSingle(b * c + a * sn);
                }
                if ((d & 1) != 0) dst[d - 1] = Bf16.FromSingle(x[d - 1]);
            }
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct QkvRopeParams
    {
        public ulong Qkv, Bias, QNorm, KNorm, Cos, Sin, Positions, Slots, Q, Kv;
        public long PageStride, LayerOffset;
        public int Tokens, Stride, Heads, KvHeads, HeadDim, PageSize, TokenStride;
        public float Eps;
    }
}

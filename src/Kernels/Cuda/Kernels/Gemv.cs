using Actors.Kernels.Cpu;
using System.Runtime.InteropServices;

namespace Actors.Kernels.Cuda.Kernels;

/// <summary>
/// Launchers of gemv.cu: y (rows, n) = x (rows, k) · wᵀ for decode steps of 1..<see cref="MaxRows"/> rows, w (n, k)
/// row-major bf16, f32 accumulation, bf16 out — a stream over the weights at memory bandwidth, where cuBLASLt's GEMM
/// kernels are tuned for larger row counts. <see cref="SwiGlu"/> fuses the MLP's gate/up product with SwiGLU. Either
/// can RMS-normalise x first (the decoder's input and post-attention norms) and <see cref="Matmul"/> can add a bias and
/// the residual stream after, so a decode layer needs no norm or residual launch of its own.
/// Callers check <see cref="Supports"/> and use cuBLASLt otherwise. Every kernel here is programmatic (see
/// <see cref="CudaFunction.Programmatic"/>): it loads its first weights before it waits for the previous kernel.
/// </summary>
public sealed class GemvKernels
{
    public const int MaxRows = 4;
    private readonly int _warps, _columns;
    private readonly CudaFunction[] _plain = new CudaFunction[MaxRows], _swiglu = new CudaFunction[MaxRows];
    private readonly CudaFunction[] _normed = new CudaFunction[MaxRows], _normedSwiglu = new CudaFunction[MaxRows];
    private readonly CudaFunction[]? _normedRope; // built with 2 columns per warp only

    /// <param name="compiler">NVRTC front end.</param>
    /// <param name="columns">Output columns per warp (default 2, or ACTORS_GEMV_COLS).</param>
    /// <param name="warps">Warps per block (default 8, or ACTORS_GEMV_WARPS).</param>
    /// <param name="step">16-byte pieces per lane per row and step (default 4, or ACTORS_GEMV_STEP).</param>
    public GemvKernels(KernelCompiler compiler, int? columns = null, int? warps = null, int? step = null)
    {
        _columns = columns ?? EnvInt("ACTORS_GEMV_COLS", 2);
        _warps = warps ?? EnvInt("ACTORS_GEMV_WARPS", 8);
        int pieces = step ?? EnvInt("ACTORS_GEMV_STEP", 4);
        if (_columns is < 1 or > 8) throw new ArgumentOutOfRangeException(nameof(columns), _columns, "1..8 columns per warp");
        if (_warps is < 1 or > 32) throw new ArgumentOutOfRangeException(nameof(warps), _warps, "1..32 warps per block");
        if (pieces is < 1 or > 16) throw new ArgumentOutOfRangeException(nameof(step), pieces, "1..16 pieces per step");
        string defines = $"#define GEMV_COLS {_columns}\n#define GEMV_WARPS {_warps}\n#define GEMV_STEP {pieces}\n";
        var module = compiler.Load(defines + KernelSource.Load("gemv.cu"), "gemv.cu");
        for (int m = 1; m <= MaxRows; m++)
        {
            _plain[m - 1] = module.Function($"gemv_{m}");
            _swiglu[m - 1] = module.Function($"gemv_swiglu_{m}");
            _normed[m - 1] = module.Function($"gemv_norm_{m}");
            _normedSwiglu[m - 1] = module.Function($"gemv_norm_swiglu_{m}");
            foreach (var f in new[] { _plain[m - 1], _swiglu[m - 1], _normed[m - 1], _normedSwiglu[m - 1] })
                f.Programmatic = true; // weights before PDL_WAIT, x after
        }
        if (_columns == 2)
        {
            _normedRope = new CudaFunction[MaxRows];
            for (int m = 1; m <= MaxRows; m++)
            {
                _normedRope[m - 1] = module.Function($"gemv_norm_rope_{m}");
                _normedRope[m - 1].Programmatic = true;
            }
        }
    }

    private static int EnvInt(string name, int fallback) => int.TryParse(Environment.GetEnvironmentVariable(name), out int v) ? v : fallback;

    /// <summary>Whether the kernels take this product: 1..MaxRows rows, k a multiple of 8, every operand 16-byte aligned.</summary>
    public static bool Supports(int rows, int k, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y) =>
        rows is >= 1 and <= MaxRows && k > 0 && k % 8 == 0 && x.Pointer % 16 == 0 && w.Pointer % 16 == 0 && y.Pointer % 16 == 0;

    /// <summary>
    /// Enqueues y (rows, n) = x' (rows, k) · wᵀ, w (n, k), where x' = x, or with <paramref name="norm"/> (k weights)
    /// x' = bf16(x / sqrt(mean(x²) + eps) · norm) per row, rounded as the add_rmsnorm kernel stores it. Then, rounding to
    /// bf16 after each: + <paramref name="bias"/> (n) and + <paramref name="residual"/> (rows, n), which may be y itself
    /// (the residual stream updated in place). Null spans leave each part out.
    /// </summary>
    public void Matmul(CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n,
        DeviceSpan<ushort> norm = default, float eps = 0f, DeviceSpan<ushort> bias = default, DeviceSpan<ushort> residual = default)
    {
        Check(x, w, y, rows, k, n, n, norm);
        if (bias.Pointer != 0) bias.Require(n, nameof(bias), "n");
        if (residual.Pointer != 0) residual.Require((long)rows * n, nameof(residual), "rows * n");
        var f = norm.Pointer != 0 ? _normed[rows - 1] : _plain[rows - 1];
        Launch(f, stream, x, w, y, rows, k, n, norm, eps, bias, residual);
    }

    /// <summary>
    /// Enqueues act (rows, inter) = silu(x' · gateᵀ) · (x' · upᵀ) with gateUp (2·inter, k): gate rows first, then up rows
    /// (the fused projection's layout), gate and up rounded to bf16 before SwiGLU as the unfused path stores them; x' as
    /// in <see cref="Matmul"/> (RMS-normalised with <paramref name="norm"/> when it is given).
    /// </summary>
    public void SwiGlu(CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> gateUp, DeviceSpan<ushort> act, int rows, int k, int inter,
        DeviceSpan<ushort> norm = default, float eps = 0f)
    {
        Check(x, gateUp, act, rows, k, 2 * inter, inter, norm);
        var f = norm.Pointer != 0 ? _normedSwiglu[rows - 1] : _swiglu[rows - 1];
        Launch(f, stream, x, gateUp, act, rows, k, inter, norm, eps, default, default);
    }

    /// <summary>Whether <see cref="QkvRope"/> is available (the kernels were built with 2 columns per warp) for this head dim.</summary>
    public bool SupportsQkvRope(int headDim) => _normedRope is not null && headDim > 0 && headDim % 2 == 0;

    /// <summary>
    /// Whether <see cref="QkvRope"/> lets the next kernel's blocks start at its wait for the previous kernel instead of
    /// after its main loop (default on; ACTORS_QKV_EARLY_LAUNCH=0 turns it off): the TMA decode after it then streams
    /// the key tiles it may load early while the product runs. Measured on an H200 (Llama-3-8B shape, alternating in
    /// one process, two calls, early loads on in both arms): decode after 8K 4.52-4.57 ms/token with it, 4.57-4.61 without.
    /// </summary>
    public bool EarlyQkvLaunch { get; set; } = Environment.GetEnvironmentVariable("ACTORS_QKV_EARLY_LAUNCH") != "0";

    /// <summary>
    /// The qkv product with the attention prologue folded in (decode steps): x' = RMS-normalised x (as in
    /// <see cref="Matmul"/>), qkv = x' · wᵀ (w: ((heads + 2 kvHeads) · headDim, k)), + <paramref name="bias"/>, then RoPE on
    /// every q and k head (cos, sin: (tableRows, headDim / 2), row positions[r], or r when positions is a default span)
    /// and q written to <paramref name="q"/> (rows, heads · headDim), k and v into layer <paramref name="layer"/> of
    /// <paramref name="pool"/> at slot slots[r] = page · pageSize + slot. What the product followed by
    /// <see cref="QkvRopeKernels.Apply"/> (without q/k norm) computes, with the same roundings.
    /// </summary>
    public void QkvRope(CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> norm, float eps, DeviceSpan<ushort> w, DeviceSpan<ushort> bias,
        int rows, int k, int heads, int kvHeads, int headDim, DeviceSpan<float> cos, DeviceSpan<float> sin, int tableRows, DeviceSpan<int> positions,
        DeviceSpan<int> slots, DeviceSpan<ushort> q, DeviceSpan<ushort> pool, KvLayout layout, int layer)
    {
        if (!SupportsQkvRope(headDim))
            throw new NotSupportedException($"the folded qkv + RoPE product needs 2 columns per warp (built with {_columns}) and an even head dim ({headDim})");
        if (heads <= 0 || kvHeads <= 0) throw new ArgumentOutOfRangeException(nameof(heads), $"heads {heads} and kvHeads {kvHeads} must be positive");
        if (layout.KvHeads != kvHeads || layout.HeadDim != headDim)
            throw new ArgumentException($"layout has {layout.KvHeads} KV heads of {layout.HeadDim}, the step {kvHeads} of {headDim}", nameof(layout));
        if ((uint)layer >= (uint)layout.Layers) throw new ArgumentOutOfRangeException(nameof(layer), layer, $"layer outside [0, {layout.Layers})");
        int n = (heads + 2 * kvHeads) * headDim, half = headDim / 2;
        if (norm.Pointer == 0) throw new ArgumentException("the folded qkv + RoPE product takes the input norm weights", nameof(norm));
        Check(x, w, q, rows, k, n, heads * headDim, norm);
        if (bias.Pointer != 0) bias.Require(n, nameof(bias), "(heads + 2 kvHeads) * headDim");
        if (positions.Pointer == 0 && tableRows < rows)
            throw new ArgumentOutOfRangeException(nameof(tableRows), tableRows, $"without positions the tables need a row per row of x ({rows})");
        cos.Require((long)tableRows * half, nameof(cos), "tableRows * headDim / 2");
        sin.Require((long)tableRows * half, nameof(sin), "tableRows * headDim / 2");
        if (positions.Pointer != 0) positions.Require(rows, nameof(positions), "rows");
        slots.Require(rows, nameof(slots), "rows");
        pool.Require(layout.PageStride, nameof(pool), "one page");
        var p = new GemvRopeParams
        {
            G = new GemvParams { X = x.Pointer, W = w.Pointer, Y = 0, Norm = norm.Pointer, Bias = bias.Pointer, Rows = rows, K = k, N = n, Eps = eps },
            Cos = cos.Pointer, Sin = sin.Pointer, Positions = positions.Pointer, Slots = slots.Pointer, Q = q.Pointer, Kv = pool.Pointer,
            PageStride = layout.PageStride, LayerOffset = (long)layer * layout.LayerStride,
            Heads = heads, KvHeads = kvHeads, HeadDim = headDim, PageSize = layout.PageSize, TokenStride = layout.TokenStride,
            EarlyLaunch = EarlyQkvLaunch ? 1 : 0,
        };
        uint blocks = (uint)((n / 2 + _warps - 1) / _warps); // a warp per column pair
        _normedRope![rows - 1].Launch(stream, (blocks, 1, 1), (uint)(_warps * 32), (uint)(rows * k * sizeof(ushort)), p);
    }

    private static void Check(DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int wRows, int n, DeviceSpan<ushort> norm)
    {
        if (rows is < 1 or > MaxRows) throw new ArgumentOutOfRangeException(nameof(rows), rows, $"the decode product takes 1..{MaxRows} rows");
        if (k <= 0 || k % 8 != 0) throw new ArgumentOutOfRangeException(nameof(k), k, "k must be a positive multiple of 8 (16-byte loads)");
        if (n <= 0) throw new ArgumentOutOfRangeException(nameof(n), n, "n must be positive");
        x.Require((long)rows * k, nameof(x), "rows * k");
        w.Require((long)wRows * k, nameof(w), "rows of w * k");
        y.Require((long)rows * n, nameof(y), "rows * n");
        if (x.Pointer % 16 != 0 || w.Pointer % 16 != 0 || y.Pointer % 16 != 0)
            throw new ArgumentException($"the decode product needs 16-byte aligned operands (x 0x{x.Pointer:x}, w 0x{w.Pointer:x}, y 0x{y.Pointer:x})");
        if (norm.Pointer != 0)
        {
            norm.Require(k, nameof(norm), "k");
            if (norm.Pointer % 16 != 0) throw new ArgumentException($"the norm weights must be 16-byte aligned (0x{norm.Pointer:x})", nameof(norm));
        }
    }

    private void Launch(CudaFunction f, CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n,
        DeviceSpan<ushort> norm, float eps, DeviceSpan<ushort> bias, DeviceSpan<ushort> residual)
    {
        var p = new GemvParams
        {
            X = x.Pointer, W = w.Pointer, Y = y.Pointer, Norm = norm.Pointer, Bias = bias.Pointer, Resid = residual.Pointer,
            Rows = rows, K = k, N = n, Eps = eps,
        };
        uint blocks = (uint)((n + _warps * _columns - 1) / (_warps * _columns));
        uint shared = norm.Pointer != 0 ? (uint)(rows * k * sizeof(ushort)) : 0; // the normalised rows of x
        f.Launch(stream, (blocks, 1, 1), (uint)(_warps * 32), shared, p);
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct GemvParams { public ulong X, W, Y, Norm, Bias, Resid; public int Rows, K, N; public float Eps; }

    [StructLayout(LayoutKind.Sequential)]
    private struct GemvRopeParams
    {
        public GemvParams G;
        public ulong Cos, Sin, Positions, Slots, Q, Kv;
        public long PageStride, LayerOffset;
        public int Heads, KvHeads, HeadDim, PageSize, TokenStride, EarlyLaunch;
    }
}

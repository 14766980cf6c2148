using System.Runtime.InteropServices;

namespace Actors.Kernels.Cuda.Kernels;

/// <summary>
/// Launchers of elementwise.cu: embedding gather, fused residual add + RMSNorm, RoPE, SwiGLU. bf16 (raw bits as
/// <see cref="ushort"/>) in and out, f32 math. Every launch is asynchronous on the given stream; sizes are checked here
/// because the kernels cannot report errors.
/// </summary>
public sealed class ElementwiseKernels
{
    private const uint Block = 256;
    private readonly CudaFunction _embedding, _rmsnorm, _rmsnorm8, _rope, _swiglu, _swiglu8;

    public ElementwiseKernels(KernelCompiler compiler)
    {
        var module = compiler.Load(KernelSource.Load("elementwise.cu"), "elementwise.cu");
        _embedding = module.Function("embedding_gather");
        _rmsnorm = module.Function("add_rmsnorm");
        _rmsnorm8 = module.Function("add_rmsnorm8");
        _rope = module.Function("rope");
        _swiglu = module.Function("swiglu");
        _swiglu8 = module.Function("swiglu8");
        foreach (var f in new[] { _embedding, _rmsnorm, _rmsnorm8, _rope, _swiglu, _swiglu8 }) f.Programmatic = true; // PDL_ENTER in each
    }

    /// <summary>output (tokens, hidden) = table[ids[t]], table (vocab, hidden). Ids outside [0, vocab) give zero rows.</summary>
    public void EmbeddingGather(CudaStream stream, DeviceSpan<ushort> table, int vocab, int hidden, DeviceSpan<int> ids, int tokens,
        DeviceSpan<ushort> output)
    {
        Positive(vocab, nameof(vocab));
        Positive(hidden, nameof(hidden));
        NonNegative(tokens, nameof(tokens));
        table.Require((long)vocab * hidden, nameof(table), "vocab * hidden");
        ids.Require(tokens, nameof(ids), "tokens");
        output.Require((long)tokens * hidden, nameof(output), "tokens * hidden");
        var p = new EmbeddingParams { Table = table.Pointer, Ids = ids.Pointer, Out = output.Pointer, Tokens = tokens, Hidden = hidden, Vocab = vocab };
        _embedding.Launch(stream, ((uint)tokens, 1, 1), Block, 0, p);
    }

    /// <summary>residual += x (stored as bf16); y = rmsnorm(residual) · weight. (rows, dim) row-major; y may alias x.</summary>
    public void AddRmsNorm(CudaStream stream, DeviceSpan<ushort> residual, DeviceSpan<ushort> x, DeviceSpan<ushort> weight,
        DeviceSpan<ushort> y, int rows, int dim, float eps)
    {
        residual.Require((long)rows * dim, nameof(residual), "rows * dim");
        LaunchNorm(stream, residual.Pointer, x, weight, y, rows, dim, eps);
    }

    /// <summary>
    /// 16-byte pieces of a row each thread of add_rmsnorm8 takes at least (1 to 4; default 4): a row of 4096 takes 128
    /// threads, so an SM holds 16 rows' loads in flight, where 512 threads of one piece each (1, as before; the bench
    /// compares both) let it hold 4. Rows wider than 1024 threads' pieces take more.
    /// </summary>
    public static int NormPiecesPerThread
    {
        get;
        set => field = value is >= 1 and <= 4 ? value : throw new ArgumentOutOfRangeException(nameof(NormPiecesPerThread), value, "must be 1 to 4 (add_rmsnorm8 holds 4 pieces per thread)");
    } = 4;

    /// <summary>y = rmsnorm(x) · weight, (rows, dim) row-major; y may alias x.</summary>
    public void RmsNorm(CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> weight, DeviceSpan<ushort> y, int rows, int dim, float eps) =>
        LaunchNorm(stream, 0, x, weight, y, rows, dim, eps);

    private void LaunchNorm(CudaStream stream, ulong residual, DeviceSpan<ushort> x, DeviceSpan<ushort> weight, DeviceSpan<ushort> y,
        int rows, int dim, float eps)
    {
        NonNegative(rows, nameof(rows));
        Positive(dim, nameof(dim));
        x.Require((long)rows * dim, nameof(x), "rows * dim");
        weight.Require(dim, nameof(weight), "dim");
        y.Require((long)rows * dim, nameof(y), "rows * dim");
        if (rows == 0) return;
        var p = new RmsNormParams { Residual = residual, X = x.Pointer, Weight = weight.Pointer, Y = y.Pointer, Rows = rows, Dim = dim, Eps = eps };
        // 16-byte pieces when the row splits into them and fits 4 pieces per thread of a 1024-thread block
        if (dim % 8 == 0 && dim <= 8 * 4 * 1024 && Aligned16(residual, x.Pointer, weight.Pointer, y.Pointer))
        {
            int pieces = dim / 8;
            int per = Math.Max(NormPiecesPerThread, (pieces + 1023) / 1024);
            uint threads = (uint)Math.Max(32, ((pieces + per - 1) / per + 31) / 32 * 32);
            _rmsnorm8.Launch(stream, ((uint)rows, 1, 1), threads, 0, p);
            return;
        }
        uint block = dim >= 1024 ? 1024u : (uint)Math.Max(32, (dim + 31) / 32 * 32);
        _rmsnorm.Launch(stream, ((uint)rows, 1, 1), block, 0, p);
    }

    /// <summary>
    /// RoPE in place, rotate_half layout. Token t, head h at x[t * rowStride + h * headDim]. cos, sin: (tableRows, headDim / 2)
    /// f32; token t uses row positions[t] (a default span: row t). Device positions must lie in [0, tableRows).
    /// </summary>
    public void Rope(CudaStream stream, DeviceSpan<ushort> x, int tokens, int heads, int headDim, int rowStride,
        DeviceSpan<float> cos, DeviceSpan<float> sin, int tableRows, DeviceSpan<int> positions = default)
    {
        NonNegative(tokens, nameof(tokens));
        Positive(heads, nameof(heads));
        Positive(headDim, nameof(headDim));
        if (rowStride < heads * headDim)
            throw new ArgumentOutOfRangeException(nameof(rowStride), rowStride, $"rowStride must be at least heads * headDim = {heads * headDim}");
        if (tokens == 0) return;
        int half = headDim / 2;
        x.Require((long)(tokens - 1) * rowStride + heads * headDim, nameof(x), "(tokens - 1) * rowStride + heads * headDim");
        if (positions.Pointer == 0 && tableRows < tokens)
            throw new ArgumentOutOfRangeException(nameof(tableRows), tableRows, $"without positions the tables need a row per token ({tokens})");
        if (positions.Pointer != 0) positions.Require(tokens, nameof(positions), "tokens");
        cos.Require((long)tableRows * half, nameof(cos), "tableRows * headDim / 2");
        sin.Require((long)tableRows * half, nameof(sin), "tableRows * headDim / 2");
        long total = (long)tokens * heads * half;
        if (total == 0) return;
        var p = new RopeParams { X = x.Pointer, Cos = cos.Pointer, Sin = sin.Pointer, Positions = positions.Pointer, Tokens = tokens, Heads = heads, HeadDim = headDim, RowStride = rowStride };
        _rope.Launch(stream, (checked((uint)((total + Block - 1) / Block)), 1, 1), Block, 0, p);
    }

    /// <summary>y = silu(gate) · up over (rows, cols); gate/up rows inStride apart, y rows outStride apart.</summary>
    public void SwiGlu(CudaStream stream, DeviceSpan<ushort> gate, DeviceSpan<ushort> up, DeviceSpan<ushort> y, int rows, int cols,
        int inStride, int outStride)
    {
        NonNegative(rows, nameof(rows));
        Positive(cols, nameof(cols));
        if (inStride < cols) throw new ArgumentOutOfRangeException(nameof(inStride), inStride, $"inStride must be at least cols = {cols}");
        if (outStride < cols) throw new ArgumentOutOfRangeException(nameof(outStride), outStride, $"outStride must be at least cols = {cols}");
        if (rows == 0) return;
        gate.Require((long)(rows - 1) * inStride + cols, nameof(gate), "(rows - 1) * inStride + cols");
        up.Require((long)(rows - 1) * inStride + cols, nameof(up), "(rows - 1) * inStride + cols");
        y.Require((long)(rows - 1) * outStride + cols, nameof(y), "(rows - 1) * outStride + cols");
        long total = (long)rows * cols;
        var p = new SwiGluParams { Gate = gate.Pointer, Up = up.Pointer, Y = y.Pointer, Rows = rows, Cols = cols, InStride = inStride, OutStride = outStride };
        if ((cols | inStride | outStride) % 8 == 0 && Aligned16(gate.Pointer, up.Pointer, y.Pointer))
        {
            long pieces = total / 8;
            _swiglu8.Launch(stream, (checked((uint)((pieces + Block - 1) / Block)), 1, 1), Block, 0, p);
            return;
        }
        _swiglu.Launch(stream, (checked((uint)((total + Block - 1) / Block)), 1, 1), Block, 0, p);
    }

    private static bool Aligned16(params ReadOnlySpan<ulong> pointers)
    {
        foreach (ulong p in pointers)
            if (p % 16 != 0) return false;
        return true;
    }

    internal static void NonNegative(int value, string name)
    {
        if (value < 0) throw new ArgumentOutOfRangeException(name, value, $"'{name}' must not be negative");
    }

    internal static void Positive(int value, string name)
    {
        if (value <= 0) throw new ArgumentOutOfRangeException(name, value, $"'{name}' must be positive");
    }

    // Twins of the params structs in elementwise.cu: same field order, pointers as ulong.
    [StructLayout(LayoutKind.Sequential)]
    private struct EmbeddingParams { public ulong Table, Ids, Out; public int Tokens, Hidden, Vocab, Pad; }

    [StructLayout(LayoutKind.Sequential)]
    private struct RmsNormParams { public ulong Residual, X, Weight, Y; public int Rows, Dim; public float Eps; public int Pad; }

    [StructLayout(LayoutKind.Sequential)]
    private struct RopeParams { public ulong X, Cos, Sin, Positions; public int Tokens, Heads, HeadDim, RowStride; }

    [StructLayout(LayoutKind.Sequential)]
    private struct SwiGluParams { public ulong Gate, Up, Y; public int Rows, Cols, InStride, OutStride; }
}

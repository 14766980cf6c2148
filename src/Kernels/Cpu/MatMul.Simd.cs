using System.Runtime.CompilerServices;

namespace Actors.Kernels.Cpu;

// MatMul fast path: y (rows, n) = x (rows, k) · wᵀ (+ bias), w (n, k) row-major (PyTorch Linear layout).
//
// Shape of the work (Qwen2.5-0.5B): k = 896 (hidden) or 4864 (MLP down), n up to 151936 (logits). Decode is
// rows = 1, a matrix-vector product that streams w once: memory bound, so it must spread n over every core.
// Prefill is rows = tokens of the chunk: compute bound, so tiles reuse every loaded vector several times.
//
// Design: dot-product form (w rows are contiguous in k, as is x), 4 × 4 register tiles (4 rows of x × 4 rows of
// w → 16 independent f32 accumulators, 8 loads per 16 FMAs), horizontal sums once per tile, the k tail done by
// one overlapped, masked vector load (no scalar loop unless k < 4). Tasks are blocks of (≤ 64 rows) × (16..128
// columns); inside a task each 4-column strip of w stays in L1 while the rows of the block stream from L2.
// Parallel.For over tasks when the product is larger than ~64 K multiply-adds.
//
// y must not overlap x or w.
//
// Versions tried. GFLOP/s = 2·rows·k·n / time of the best call in ~1 s (the dev box is 2 vCPUs of an AMD EPYC
// with AVX-512, shared with other jobs at load ~17, so the best call is the one not preempted; long calls and
// DRAM-bound ones read low). Shapes (rows, k, n); "2t" = Parallel.For on 2 threads.
//                                              (1,896,896) (1,896,4864) (1,4864,896) (1,896,151936) (16,896,896) (128,896,896)
//   v0 Reference: scalar, double accumulate        2.5        2.5          2.2            -            1.8           -
//   v1 TensorPrimitives.Dot per output, 1t          33         17-23        13-15          3.8-4.5      30-34         10-18
//   v2 4×4 / 1×4 register tiles, Vector512, 1t      45         13-22        18-25          3.7-4.2      120-148       118-122
//   v3 v2 + Parallel.For over blocks, 2t            19-44      20-31        33-46          3.3-4.7      193-243       118-210
//   v4 v3 with bf16 weights (ComputeBf16), 1t       70-73      61-64        60-62          5.0-5.8      156-168       146-150
//   v4 v3 with bf16 weights (ComputeBf16), 2t       45-120     42-98        41-47          5.2-5.7      117-309       267-283
// Earlier, on a quieter box (load ~4), mean over 0.5 s: v2/v3 (1,896,4864) 20.0/31.6, (1,896,151936) 7.5/16.1,
// (64,896,4864) 83/150, (128,896,896) 136/220; v1 7.1, 9.0, 13.9, 25.0.
// Reading: prefill is compute bound and v2 is ~5-8× v1 (loads of x and w reused across the tile); decode is bound
// by the weight stream (w of the logits is 544 MB in f32), so v1 ≈ v2 there and only halving the bytes (bf16) or
// more cores help (the bf16 w of (1,896,4864), 8.7 MB, also stays in L3 between calls; the f32 one, 17 MB, does
// not). Two decode variants were tried and measured no better than v2 within the noise, so not kept: one
// single-stream dot per column (like v1), and the 1×4 tile with software prefetch of the next 4-row strip.
public static partial class MatMul
{
    /// <summary>Products smaller than this many multiply-adds run on the calling thread (Parallel.For costs µs).</summary>
    private const long ParallelThreshold = 1 << 16;

    /// <summary>Floats of x one row block may hold, so that it stays in L2 while column strips stream past.</summary>
    private const int RowBlockFloats = 1 << 16;

    /// <summary>Fast path (SIMD, multithreaded where it pays); same contract as <see cref="Reference"/>.</summary>
    public static void Compute(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y, int rows, int k, int n) =>
        Compute(x, w, bias, y, rows, k, n, Environment.ProcessorCount);

    /// <summary><see cref="Compute(ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, Span{float}, int, int, int)"/> on at most <paramref name="maxThreads"/> threads.</summary>
    public static unsafe void Compute(ReadOnlySpan<float> x, ReadOnlySpan<float> w, ReadOnlySpan<float> bias, Span<float> y,
        int rows, int k, int n, int maxThreads)
    {
        Validate(x, w, bias, y, rows, k, n);
        fixed (float* pw = w) Run(x, pw, bias, y, rows, k, n, maxThreads);
    }

    /// <summary>Fast path of <see cref="ReferenceBf16"/>: bf16 weights widened in registers, f32 accumulation; half the weight traffic of f32.</summary>
    public static void ComputeBf16(ReadOnlySpan<float> x, ReadOnlySpan<ushort> w, ReadOnlySpan<float> bias, Span<float> y, int rows, int k, int n) =>
        ComputeBf16(x, w, bias, y, rows, k, n, Environment.ProcessorCount);

    /// <summary><see cref="ComputeBf16(ReadOnlySpan{float}, ReadOnlySpan{ushort}, ReadOnlySpan{float}, Span{float}, int, int, int)"/> on at most <paramref name="maxThreads"/> threads.</summary>
    public static unsafe void ComputeBf16(ReadOnlySpan<float> x, ReadOnlySpan<ushort> w, ReadOnlySpan<float> bias, Span<float> y,
        int rows, int k, int n, int maxThreads)
    {
        Validate(x, w, bias, y, rows, k, n);
        fixed (ushort* pw = w) Run(x, pw, bias, y, rows, k, n, maxThreads);
    }

    /// <summary>Shared driver; TW is the weight element: float, or ushort holding bf16 bits.</summary>
    private static unsafe void Run<TW>(ReadOnlySpan<float> x, TW* pw, ReadOnlySpan<float> bias, Span<float> y,
        int rows, int k, int n, int maxThreads) where TW : unmanaged
    {
        if (maxThreads < 1) throw new ArgumentOutOfRangeException(nameof(maxThreads), maxThreads, "must be at least 1");
        if (rows == 0 || n == 0) return;
        fixed (float* px = x, pb = bias, py = y)
        {
            long macs = (long)rows * n * k;
            bool parallel = maxThreads > 1 && macs >= ParallelThreshold;
            int rowBlock = rows <= 4 ? rows : Math.Min(rows, Math.Clamp(RowBlockFloats / Math.Max(k, 1) & ~3, 4, 64));
            // Enough column blocks for ~8 tasks per thread (load balance), but ≥ 16 columns so a task outweighs its scheduling.
            int colBlock = parallel ? Math.Clamp((n + 8 * maxThreads - 1) / (8 * maxThreads) + 3 & ~3, 16, 128) : n;
            var job = new Job<TW>(px, pw, bias.IsEmpty ? null : pb, py, rows, k, n, rowBlock, colBlock);
            if (parallel && job.Tasks > 1)
                Parallel.For(0, job.Tasks, new ParallelOptions { MaxDegreeOfParallelism = maxThreads }, job.Run);
            else
                for (int t = 0; t < job.Tasks; t++) job.Run(t);
        }
    }

    private static void Validate<TW>(ReadOnlySpan<float> x, ReadOnlySpan<TW> w, ReadOnlySpan<float> bias, Span<float> y, int rows, int k, int n)
    {
        Shapes.NonNegative(rows, nameof(rows));
        Shapes.NonNegative(k, nameof(k));
        Shapes.NonNegative(n, nameof(n));
        Shapes.Check(x.Length >= (long)rows * k, nameof(x), "rows * k");
        Shapes.Check(w.Length >= (long)n * k, nameof(w), "n * k");
        Shapes.Check(bias.IsEmpty || bias.Length >= n, nameof(bias), "n");
        Shapes.Check(y.Length >= (long)rows * n, nameof(y), "rows * n");
    }

    /// <summary>One product cut into tasks of (rowBlock rows) × (colBlock columns); task t covers row block t / colBlocks.</summary>
    private readonly unsafe struct Job<TW>(float* x, TW* w, float* bias, float* y, int rows, int k, int n, int rowBlock, int colBlock)
        where TW : unmanaged
    {
        private readonly int _colBlocks = (n + colBlock - 1) / colBlock;
        public int Tasks => _colBlocks * ((rows + rowBlock - 1) / rowBlock);

        public void Run(int task)
        {
            int r0 = task / _colBlocks * rowBlock, c0 = task % _colBlocks * colBlock;
            int r1 = Math.Min(rows, r0 + rowBlock), c1 = Math.Min(n, c0 + colBlock);
            if (V512.IsHardwareAccelerated && k >= V512.Count) Block<V512>(r0, r1, c0, c1);
            else if (V256.IsHardwareAccelerated && k >= V256.Count) Block<V256>(r0, r1, c0, c1);
            else if (V128.IsHardwareAccelerated && k >= V128.Count) Block<V128>(r0, r1, c0, c1);
            else BlockScalar(r0, r1, c0, c1);
        }

        private void Block<V>(int r0, int r1, int c0, int c1) where V : struct, ISimdVector<V>
        {
            int c = c0;
            for (; c + 4 <= c1; c += 4)
            {
                TW* wc = w + (long)c * k;
                float* bc = bias == null ? null : bias + c;
                int r = r0;
                for (; r + 4 <= r1; r += 4) Tile4x4<V, TW>(x + (long)r * k, wc, k, y + (long)r * n + c, n, bc);
                for (; r < r1; r++) Tile1x4<V, TW>(x + (long)r * k, wc, k, y + (long)r * n + c, bc);
            }
            for (; c < c1; c++)
                for (int r = r0; r < r1; r++)
                    y[(long)r * n + c] = Dot<V, TW>(x + (long)r * k, w + (long)c * k, k) + (bias == null ? 0 : bias[c]);
        }

        private void BlockScalar(int r0, int r1, int c0, int c1)
        {
            for (int r = r0; r < r1; r++)
                for (int c = c0; c < c1; c++)
                {
                    float acc = 0;
                    for (int i = 0; i < k; i++) acc += x[(long)r * k + i] * Scalar(w + (long)c * k + i);
                    y[(long)r * n + c] = acc + (bias == null ? 0 : bias[c]);
                }
        }
    }

    /// <summary>y[r, c] for 4 rows of x (stride k) × 4 rows of w (stride k); y stride n. Requires k ≥ V.Count.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Tile4x4<V, TW>(float* x, TW* w, int k, float* y, int n, float* bias)
        where V : struct, ISimdVector<V> where TW : unmanaged
    {
        V a00 = V.Zero, a01 = V.Zero, a02 = V.Zero, a03 = V.Zero;
        V a10 = V.Zero, a11 = V.Zero, a12 = V.Zero, a13 = V.Zero;
        V a20 = V.Zero, a21 = V.Zero, a22 = V.Zero, a23 = V.Zero;
        V a30 = V.Zero, a31 = V.Zero, a32 = V.Zero, a33 = V.Zero;
        float* x1 = x + k, x2 = x1 + k, x3 = x2 + k;
        TW* w1 = w + k, w2 = w1 + k, w3 = w2 + k;
        int i = 0;
        for (; i <= k - V.Count; i += V.Count)
        {
            V b0 = LoadW<V, TW>(w + i), b1 = LoadW<V, TW>(w1 + i), b2 = LoadW<V, TW>(w2 + i), b3 = LoadW<V, TW>(w3 + i);
            V xv = V.Load(x + i);
            a00 = V.MultiplyAdd(xv, b0, a00); a01 = V.MultiplyAdd(xv, b1, a01); a02 = V.MultiplyAdd(xv, b2, a02); a03 = V.MultiplyAdd(xv, b3, a03);
            xv = V.Load(x1 + i);
            a10 = V.MultiplyAdd(xv, b0, a10); a11 = V.MultiplyAdd(xv, b1, a11); a12 = V.MultiplyAdd(xv, b2, a12); a13 = V.MultiplyAdd(xv, b3, a13);
            xv = V.Load(x2 + i);
            a20 = V.MultiplyAdd(xv, b0, a20); a21 = V.MultiplyAdd(xv, b1, a21); a22 = V.MultiplyAdd(xv, b2, a22); a23 = V.MultiplyAdd(xv, b3, a23);
            xv = V.Load(x3 + i);
            a30 = V.MultiplyAdd(xv, b0, a30); a31 = V.MultiplyAdd(xv, b1, a31); a32 = V.MultiplyAdd(xv, b2, a32); a33 = V.MultiplyAdd(xv, b3, a33);
        }
        if (i < k)
        {
            // Tail: reload the last full vector and keep only the lanes not yet counted (both operands, so that an
            // infinite element counted already cannot turn into 0 · ∞ = NaN).
            V mask = V.TailMask(k - i);
            i = k - V.Count;
            V b0 = V.And(LoadW<V, TW>(w + i), mask), b1 = V.And(LoadW<V, TW>(w1 + i), mask);
            V b2 = V.And(LoadW<V, TW>(w2 + i), mask), b3 = V.And(LoadW<V, TW>(w3 + i), mask);
            V xv = V.And(V.Load(x + i), mask);
            a00 = V.MultiplyAdd(xv, b0, a00); a01 = V.MultiplyAdd(xv, b1, a01); a02 = V.MultiplyAdd(xv, b2, a02); a03 = V.MultiplyAdd(xv, b3, a03);
            xv = V.And(mask, V.Load(x1 + i));
            a10 = V.MultiplyAdd(xv, b0, a10); a11 = V.MultiplyAdd(xv, b1, a11); a12 = V.MultiplyAdd(xv, b2, a12); a13 = V.MultiplyAdd(xv, b3, a13);
            xv = V.And(mask, V.Load(x2 + i));
            a20 = V.MultiplyAdd(xv, b0, a20); a21 = V.MultiplyAdd(xv, b1, a21); a22 = V.MultiplyAdd(xv, b2, a22); a23 = V.MultiplyAdd(xv, b3, a23);
            xv = V.And(mask, V.Load(x3 + i));
            a30 = V.MultiplyAdd(xv, b0, a30); a31 = V.MultiplyAdd(xv, b1, a31); a32 = V.MultiplyAdd(xv, b2, a32); a33 = V.MultiplyAdd(xv, b3, a33);
        }
        float z0 = 0, z1 = 0, z2 = 0, z3 = 0;
        if (bias != null) { z0 = bias[0]; z1 = bias[1]; z2 = bias[2]; z3 = bias[3]; }
        float* y1 = y + n, y2 = y1 + n, y3 = y2 + n;
        y[0] = V.Sum(a00) + z0; y[1] = V.Sum(a01) + z1; y[2] = V.Sum(a02) + z2; y[3] = V.Sum(a03) + z3;
        y1[0] = V.Sum(a10) + z0; y1[1] = V.Sum(a11) + z1; y1[2] = V.Sum(a12) + z2; y1[3] = V.Sum(a13) + z3;
        y2[0] = V.Sum(a20) + z0; y2[1] = V.Sum(a21) + z1; y2[2] = V.Sum(a22) + z2; y2[3] = V.Sum(a23) + z3;
        y3[0] = V.Sum(a30) + z0; y3[1] = V.Sum(a31) + z1; y3[2] = V.Sum(a32) + z2; y3[3] = V.Sum(a33) + z3;
    }

    /// <summary>One row of x × 4 rows of w (the decode case): two accumulators per column hide FMA latency.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Tile1x4<V, TW>(float* x, TW* w, int k, float* y, float* bias)
        where V : struct, ISimdVector<V> where TW : unmanaged
    {
        V a0 = V.Zero, a1 = V.Zero, a2 = V.Zero, a3 = V.Zero, e0 = V.Zero, e1 = V.Zero, e2 = V.Zero, e3 = V.Zero;
        TW* w1 = w + k, w2 = w1 + k, w3 = w2 + k;
        int i = 0;
        for (; i <= k - 2 * V.Count; i += 2 * V.Count)
        {
            V xv = V.Load(x + i), xu = V.Load(x + i + V.Count);
            a0 = V.MultiplyAdd(xv, LoadW<V, TW>(w + i), a0); e0 = V.MultiplyAdd(xu, LoadW<V, TW>(w + i + V.Count), e0);
            a1 = V.MultiplyAdd(xv, LoadW<V, TW>(w1 + i), a1); e1 = V.MultiplyAdd(xu, LoadW<V, TW>(w1 + i + V.Count), e1);
            a2 = V.MultiplyAdd(xv, LoadW<V, TW>(w2 + i), a2); e2 = V.MultiplyAdd(xu, LoadW<V, TW>(w2 + i + V.Count), e2);
            a3 = V.MultiplyAdd(xv, LoadW<V, TW>(w3 + i), a3); e3 = V.MultiplyAdd(xu, LoadW<V, TW>(w3 + i + V.Count), e3);
        }
        V mask = V.Broadcast(BitConverter.Int32BitsToSingle(-1));
        while (i < k)
        {
            if (i > k - V.Count) { mask = V.TailMask(k - i); i = k - V.Count; }
            V xv = V.And(V.Load(x + i), mask);
            a0 = V.MultiplyAdd(xv, V.And(LoadW<V, TW>(w + i), mask), a0);
            a1 = V.MultiplyAdd(xv, V.And(LoadW<V, TW>(w1 + i), mask), a1);
            a2 = V.MultiplyAdd(xv, V.And(LoadW<V, TW>(w2 + i), mask), a2);
            a3 = V.MultiplyAdd(xv, V.And(LoadW<V, TW>(w3 + i), mask), a3);
            i += V.Count;
        }
        y[0] = V.Sum(a0 + e0) + (bias == null ? 0 : bias[0]);
        y[1] = V.Sum(a1 + e1) + (bias == null ? 0 : bias[1]);
        y[2] = V.Sum(a2 + e2) + (bias == null ? 0 : bias[2]);
        y[3] = V.Sum(a3 + e3) + (bias == null ? 0 : bias[3]);
    }

    /// <summary>Σ a[i]·b[i] over length (≥ V.Count), f32 with two accumulators and a masked tail.</summary>
    private static unsafe float Dot<V, TW>(float* a, TW* b, int length) where V : struct, ISimdVector<V> where TW : unmanaged
    {
        V s0 = V.Zero, s1 = V.Zero;
        int i = 0;
        for (; i <= length - 2 * V.Count; i += 2 * V.Count)
        {
            s0 = V.MultiplyAdd(V.Load(a + i), LoadW<V, TW>(b + i), s0);
            s1 = V.MultiplyAdd(V.Load(a + i + V.Count), LoadW<V, TW>(b + i + V.Count), s1);
        }
        V mask = V.Broadcast(BitConverter.Int32BitsToSingle(-1));
        while (i < length)
        {
            if (i > length - V.Count) { mask = V.TailMask(length - i); i = length - V.Count; }
            s0 = V.MultiplyAdd(V.And(V.Load(a + i), mask), V.And(LoadW<V, TW>(b + i), mask), s0);
            i += V.Count;
        }
        return V.Sum(s0 + s1);
    }

    /// <summary>V.Count weights as f32; the branch is on a JIT-time constant, so each instantiation keeps one load.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe V LoadW<V, TW>(TW* p) where V : struct, ISimdVector<V> where TW : unmanaged =>
        typeof(TW) == typeof(float) ? V.Load((float*)p) : V.LoadBf16((ushort*)p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe float Scalar<TW>(TW* p) where TW : unmanaged =>
        typeof(TW) == typeof(float) ? *(float*)p : Bf16ToSingle(*(ushort*)p);
}

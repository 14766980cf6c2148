using System.Collections.Concurrent;
using Actors.Kernels.Cuda.Native;

namespace Actors.Kernels.Cuda;

/// <summary>
/// bf16 matrix products through cuBLASLt: y (rows, n) = x (rows, k) · wᵀ, w (n, k) row-major as a PyTorch Linear
/// stores it, bf16 in and out, f32 accumulation and scale (CUBLAS_COMPUTE_32F).
/// cuBLASLt is column-major; a row-major (r, c) matrix is the column-major (c, r) matrix, so the product is computed
/// as yᵀ (n, rows) = op(A) · B with A = w viewed column-major (k, n) transposed (TRANSA = T) and B = xᵀ viewed
/// column-major (k, rows) (TRANSB = N): the "TN" form cuBLASLt's fastest kernels use.
/// Plans (descriptors + algorithm) are cached per shape; the fixed workspace keeps launches capturable in graphs.
/// The algorithm is cuBLASLt's first heuristic pick, or with <see cref="Autotune"/> (on by default; the environment
/// variable ACTORS_CUBLASLT_AUTOTUNE=0 turns it off), for products of at least <see cref="AutotuneMinRows"/> rows and
/// <see cref="AutotuneMinFlops"/>, the fastest of its first <see cref="AutotuneCandidates"/> picks timed hot: a prefill
/// runs its products back to back at the card's power limit (an H200 at 700 W holds ~1450-1550 MHz through them), where
/// the heuristic's first pick is not the fastest: scripts/gpu/gemm-harness measured the hot-fastest 3-4 % ahead for the
/// qkv and gate/up shapes at 8K rows, and a 32-layer chain of the four projections 1.8-2.6 % faster. Each (k, n) is
/// tuned once, on the first call's own operands (outside graph capture; the call waits for the stream while it times,
/// ~0.5 s for an 8K-row gate/up product; the CUDA engine makes that call when it starts), and the chosen algorithm is
/// reused for every later call of that (k, n) over the thresholds where cuBLASLt accepts it for the shape (a prefill's
/// last chunk has any row count). Which candidate wins can differ between processes (timing), so products of that size
/// may differ in their last bits between processes; within one, a shape always takes the same algorithm.
/// </summary>
public sealed unsafe class CublasLtMatmul : IDisposable
{
    private readonly SafeCublasLtHandle _handle;
    private readonly DeviceBuffer<byte> _workspace;
    private readonly ConcurrentDictionary<(int Rows, int K, int N), Plan> _plans = new();

    public CublasLtMatmul(CudaDevice device, long workspaceBytes = 32L << 20)
    {
        Device = device;
        NativeLibraries.EnsureResolver();
        device.MakeCurrent();
        IntPtr h;
        CublasLt.Check(CublasLt.cublasLtCreate(&h), "cublasLtCreate");
        _handle = new SafeCublasLtHandle(device.Context, h);
        _workspace = device.Allocate<byte>(workspaceBytes);
    }

    public CudaDevice Device { get; }

    /// <summary>Time cuBLASLt's candidate algorithms for each new large shape and keep the fastest (see the class summary).</summary>
    public bool Autotune { get; set; } = Environment.GetEnvironmentVariable("ACTORS_CUBLASLT_AUTOTUNE") != "0";
    public int AutotuneMinRows { get; set; } = 4096;
    /// <summary>Products under this many flops (2 rows k n) take the heuristic's pick: their candidates differ by microseconds.</summary>
    public double AutotuneMinFlops { get; set; } = 1e11;
    public int AutotuneCandidates { get; set; } = 16;
    /// <summary>Milliseconds of back-to-back launches of the first pick before the candidates are timed (heats the card).</summary>
    public double AutotuneHeatMs { get; set; } = 300;
    /// <summary>Milliseconds of launches each candidate is timed over (at least 3 launches).</summary>
    public double AutotuneTimeMs { get; set; } = 30;

    // (k, n) -> the algorithm tuning chose, reused for every shape of that (k, n) with at least AutotuneMinRows rows
    private readonly ConcurrentDictionary<(int K, int N), ulong[]> _tuned = new();

    /// <summary>
    /// False: every call takes cuBLASLt's first heuristic pick, tuned shapes included (their tuning is kept), so the two
    /// can be compared in one process without tuning again.
    /// </summary>
    public bool UseTunedAlgorithms { get; set; } = true;

    /// <summary>Whether the cached plan of this shape runs a tuned algorithm (chosen by timing, or reused for the (k, n)).</summary>
    public bool UsesTunedAlgorithm(int rows, int k, int n) => _plans.TryGetValue((rows, k, n), out var p) && p.Tuned;

    /// <summary>One shape's tuning: how many candidates ran, the heuristic pick's time and the chosen one's (ms).</summary>
    public readonly record struct Tuning(int Rows, int K, int N, int Candidates, int Chosen, double HeuristicMs, double ChosenMs);

    private readonly ConcurrentQueue<Tuning> _tunings = new();
    public IReadOnlyCollection<Tuning> Tunings => _tunings;

    /// <summary>
    /// Enqueues y = x · wᵀ on <paramref name="stream"/>, or with <paramref name="accumulate"/> y = bf16(y + x · wᵀ) (the
    /// residual add in the GEMM's epilogue, in f32 before the one rounding). x: (rows, k), w: (n, k), y: (rows, n), all
    /// bf16 row-major.
    /// </summary>
    public void Bf16(CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n, bool accumulate = false)
    {
        CheckOperands(x, w, y, rows, k, n, minRows: 0);
        if (rows == 0) return;
        var plan = GetPlan(stream, x, w, y, rows, k, n, accumulate);
        Check(Launch(stream, plan, ActiveAlgo(plan), x, w, y, accumulate), rows, k, n);
        if (!plan.Launched) MarkLaunched(plan);
    }

    private static void CheckOperands(DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n, int minRows)
    {
        if (rows < minRows || k <= 0 || n <= 0)
            throw new ArgumentOutOfRangeException(nameof(rows), $"matmul shape rows {rows}, k {k}, n {n}: rows ≥ {minRows}, k and n > 0");
        x.Require((long)rows * k, nameof(x), "rows * k");
        w.Require((long)n * k, nameof(w), "n * k");
        y.Require((long)rows * n, nameof(y), "rows * n");
    }

    /// <summary>
    /// Makes this shape's plan now (cuBLASLt's heuristic, and for a large shape the tuning <see cref="Bf16"/> would do)
    /// and, when its algorithm has not run in this instance yet, runs the product once (writing y): the first launch of a
    /// cuBLASLt kernel in a process costs milliseconds (an H200 measured 2.4-3.1 ms for each of the four decoder products
    /// at a row count not seen before, 0.25 ms for the next row count that takes the same kernel), so a server prepares
    /// the row counts it will run before its first request instead of inside it.
    /// </summary>
    public void Prepare(CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n, bool accumulate = false)
    {
        CheckOperands(x, w, y, rows, k, n, minRows: 1);
        var plan = GetPlan(stream, x, w, y, rows, k, n, accumulate);
        if (plan.Launched) return;
        // another row count's plan already ran this algorithm: the kernel is loaded
        if (!_launchedAlgoSet.ContainsKey(AlgoKey(ActiveAlgo(plan))))
            Check(Launch(stream, plan, ActiveAlgo(plan), x, w, y, accumulate), rows, k, n);
        MarkLaunched(plan);
    }

    /// <summary>Plans made so far (one per row count, k and n).</summary>
    public int PlanCount => _plans.Count;

    // the algorithms (cuBLASLt's 64-byte opaque descriptors) launched at least once by this instance
    private readonly ConcurrentDictionary<(ulong, ulong, ulong, ulong, ulong, ulong, ulong, ulong), bool> _launchedAlgoSet = new();

    private static (ulong, ulong, ulong, ulong, ulong, ulong, ulong, ulong) AlgoKey(ulong* a) => (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);

    private void MarkLaunched(Plan plan)
    {
        plan.Launched = true;
        _launchedAlgoSet.TryAdd(AlgoKey(ActiveAlgo(plan)), true);
    }

    private ulong* ActiveAlgo(Plan plan) => UseTunedAlgorithms ? plan.Algo : plan.First;

    private Plan GetPlan(CudaStream stream, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, int rows, int k, int n, bool accumulate)
    {
        if (!_plans.TryGetValue((rows, k, n), out var plan))
        {
            // tuning runs write y: not over an accumulating call's y (its residual); a tuned (k, n) needs no timing
            bool large = Autotune && rows >= AutotuneMinRows && 2.0 * rows * k * n >= AutotuneMinFlops;
            bool tune = large && !accumulate && !stream.IsCapturing && !_tuned.ContainsKey((k, n));
            plan = CreatePlan(rows, k, n, tune ? AutotuneCandidates : 1, tune ? (stream, x, w, y) : null,
                large && _tuned.TryGetValue((k, n), out var reuse) ? reuse : null);
            if (!_plans.TryAdd((rows, k, n), plan))
            {
                plan.Destroy();
                plan = _plans[(rows, k, n)];
            }
        }
        return plan;
    }

    private int Launch(CudaStream stream, Plan plan, ulong* algo, DeviceSpan<ushort> x, DeviceSpan<ushort> w, DeviceSpan<ushort> y, bool accumulate = false)
    {
        Device.MakeCurrent();
        float alpha = 1f, beta = accumulate ? 1f : 0f;
        return CublasLt.cublasLtMatmul(_handle.DangerousGetHandle(), plan.Operation, &alpha, w.Pointer, plan.A, x.Pointer, plan.B,
            &beta, y.Pointer, plan.C, y.Pointer, plan.C, algo, _workspace.Pointer, (nuint)_workspace.Bytes, stream.Handle);
    }

    private static void Check(int status, int rows, int k, int n) => CublasLt.Check(status, "cublasLtMatmul", $"bf16 rows {rows}, k {k}, n {n}");

    /// <summary>
    /// Times each candidate hot and returns the fastest's index: first <see cref="AutotuneHeatMs"/> of the first pick
    /// back to back, then per candidate two untimed launches and <see cref="AutotuneTimeMs"/> of timed ones. A candidate
    /// whose launch fails is skipped. The output is overwritten; the caller's launch follows.
    /// </summary>
    private int Choose(int rows, int k, int n, Plan plan, CublasLtHeuristicResult* candidates, int count,
        (CudaStream Stream, DeviceSpan<ushort> X, DeviceSpan<ushort> W, DeviceSpan<ushort> Y) on)
    {
        using var start = new CudaEvent(Device);
        using var end = new CudaEvent(Device);
        // ms per launch over `launches` launches of one candidate
        double Time(ulong* algo, int launches)
        {
            start.Record(on.Stream);
            for (int r = 0; r < launches; r++) Check(Launch(on.Stream, plan, algo, on.X, on.W, on.Y), rows, k, n);
            end.Record(on.Stream);
            return CudaEvent.ElapsedMilliseconds(start, end) / launches;
        }
        Check(Launch(on.Stream, plan, candidates[0].Algo, on.X, on.W, on.Y), rows, k, n);
        double once = Math.Max(1e-3, Time(candidates[0].Algo, 1));
        Time(candidates[0].Algo, (int)Math.Min(100_000, Math.Ceiling(AutotuneHeatMs / once)));
        int timed = (int)Math.Clamp(Math.Ceiling(AutotuneTimeMs / once), 3, 100_000);
        int best = 0, tried = 0;
        double bestMs = double.MaxValue, firstMs = double.NaN;
        for (int i = 0; i < count; i++)
        {
            ulong* algo = candidates[i].Algo;
            if (candidates[i].State != 0 || Launch(on.Stream, plan, algo, on.X, on.W, on.Y) != 0) continue;
            Check(Launch(on.Stream, plan, algo, on.X, on.W, on.Y), rows, k, n);
            double ms = Time(algo, timed);
            tried++;
            if (i == 0) firstMs = ms;
            if (ms < bestMs) (best, bestMs) = (i, ms);
        }
        _tunings.Enqueue(new Tuning(rows, k, n, tried, best, firstMs, bestMs));
        return best;
    }

    private Plan CreatePlan(int rows, int k, int n, int requested,
        (CudaStream Stream, DeviceSpan<ushort> X, DeviceSpan<ushort> W, DeviceSpan<ushort> Y)? tuneOn, ulong[]? reuse)
    {
        Device.MakeCurrent();
        var plan = new Plan();
        try
        {
            IntPtr op, a, b, c, pref;
            CublasLt.Check(CublasLt.cublasLtMatmulDescCreate(&op, CublasLt.ComputeF32, CublasLt.DataF32), "cublasLtMatmulDescCreate", "COMPUTE_32F, scale R_32F");
            plan.Operation = op;
            int transA = CublasLt.OpT, transB = CublasLt.OpN;
            CublasLt.Check(CublasLt.cublasLtMatmulDescSetAttribute(op, CublasLt.DescTransA, &transA, sizeof(int)), "cublasLtMatmulDescSetAttribute", "TRANSA = T");
            CublasLt.Check(CublasLt.cublasLtMatmulDescSetAttribute(op, CublasLt.DescTransB, &transB, sizeof(int)), "cublasLtMatmulDescSetAttribute", "TRANSB = N");
            CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(&a, CublasLt.DataBf16, (ulong)k, (ulong)n, k), "cublasLtMatrixLayoutCreate", $"A = w: bf16 ({k}, {n}) ld {k}");
            plan.A = a;
            CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(&b, CublasLt.DataBf16, (ulong)k, (ulong)rows, k), "cublasLtMatrixLayoutCreate", $"B = x: bf16 ({k}, {rows}) ld {k}");
            plan.B = b;
            CublasLt.Check(CublasLt.cublasLtMatrixLayoutCreate(&c, CublasLt.DataBf16, (ulong)n, (ulong)rows, n), "cublasLtMatrixLayoutCreate", $"C = y: bf16 ({n}, {rows}) ld {n}");
            plan.C = c;
            CublasLt.Check(CublasLt.cublasLtMatmulPreferenceCreate(&pref), "cublasLtMatmulPreferenceCreate");
            try
            {
                ulong ws = (ulong)_workspace.Bytes;
                CublasLt.Check(CublasLt.cublasLtMatmulPreferenceSetAttribute(pref, CublasLt.PrefMaxWorkspaceBytes, &ws, sizeof(ulong)),
                    "cublasLtMatmulPreferenceSetAttribute", $"MAX_WORKSPACE_BYTES {ws}");
                var results = stackalloc CublasLtHeuristicResult[Math.Max(1, requested)];
                int found;
                CublasLt.Check(CublasLt.cublasLtMatmulAlgoGetHeuristic(_handle.DangerousGetHandle(), op, a, b, c, c, pref, Math.Max(1, requested), results, &found),
                    "cublasLtMatmulAlgoGetHeuristic", $"bf16 rows {rows}, k {k}, n {n}");
                if (found == 0)
                    throw new CublasException("cublasLtMatmulAlgoGetHeuristic", $"bf16 rows {rows}, k {k}, n {n}", 15, "CUBLAS_STATUS_NOT_SUPPORTED", "no algorithm for this shape");
                int chosen = tuneOn is { } on && found > 1 ? Choose(rows, k, n, plan, results, found, on) : 0;
                for (int i = 0; i < 8; i++) (plan.Algo[i], plan.First[i]) = (results[chosen].Algo[i], results[0].Algo[i]);
                if (tuneOn is not null)
                {
                    var keep = new ulong[8];
                    for (int i = 0; i < 8; i++) keep[i] = plan.Algo[i];
                    _tuned.TryAdd((k, n), keep);
                    plan.Tuned = true;
                }
                else if (reuse is not null)
                {
                    // the (k, n)'s tuned algorithm where cuBLASLt accepts it for this row count and our workspace
                    var check = stackalloc ulong[8];
                    for (int i = 0; i < 8; i++) check[i] = reuse[i];
                    CublasLtHeuristicResult r;
                    if (CublasLt.cublasLtMatmulAlgoCheck(_handle.DangerousGetHandle(), op, a, b, c, c, check, &r) == 0
                        && r.WorkspaceSize <= (nuint)_workspace.Bytes)
                    {
                        for (int i = 0; i < 8; i++) plan.Algo[i] = reuse[i];
                        plan.Tuned = true;
                    }
                }
            }
            finally
            {
                CublasLt.cublasLtMatmulPreferenceDestroy(pref);
            }
            return plan;
        }
        catch
        {
            plan.Destroy();
            throw;
        }
    }

    /// <summary>Drops every cached plan and tuned algorithm, so the next call per shape plans (and with <see cref="Autotune"/>, tunes) again.</summary>
    public void ClearPlans()
    {
        _tuned.Clear();
        _launchedAlgoSet.Clear();
        foreach (var key in _plans.Keys)
            if (_plans.TryRemove(key, out var p)) p.Destroy();
    }

    public void Dispose()
    {
        foreach (var p in _plans.Values) p.Destroy();
        _plans.Clear();
        _workspace.Dispose();
        _handle.Dispose();
    }

    private sealed class Plan
    {
        public IntPtr Operation, A, B, C;
        public bool Tuned;
        public bool Launched; // its algorithm has run in this instance (Prepare launches nothing more)
        public readonly ulong* Algo = (ulong*)System.Runtime.InteropServices.NativeMemory.AllocZeroed(8 * sizeof(ulong));
        public readonly ulong* First = (ulong*)System.Runtime.InteropServices.NativeMemory.AllocZeroed(8 * sizeof(ulong)); // the heuristic's first pick

        public void Destroy()
        {
            if (C != IntPtr.Zero) CublasLt.cublasLtMatrixLayoutDestroy(C);
            if (B != IntPtr.Zero) CublasLt.cublasLtMatrixLayoutDestroy(B);
            if (A != IntPtr.Zero) CublasLt.cublasLtMatrixLayoutDestroy(A);
            if (Operation != IntPtr.Zero) CublasLt.cublasLtMatmulDescDestroy(Operation);
            C = B = A = Operation = IntPtr.Zero;
            System.Runtime.InteropServices.NativeMemory.Free(Algo);
            System.Runtime.InteropServices.NativeMemory.Free(First);
        }
    }
}

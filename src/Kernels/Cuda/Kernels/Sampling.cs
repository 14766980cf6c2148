using System.Runtime.InteropServices;

namespace Actors.Kernels.Cuda.Kernels;

/// <summary>
/// Launcher and scalar reference of sampling.cu: one token per bf16 logits row on the device (greedy, temperature,
/// top-k, top-p), the draw made from a uniform the host passes per row. The semantics are those of
/// Actors.Engine.Sampling.Sampler (see sampling.cu's header); <see cref="Reference"/> is the kernel's algorithm
/// (order-key histogram, per-key masses) written out sequentially, and the Engine's tests check it against the Sampler.
/// </summary>
public sealed class SamplingKernels
{
    /// <summary>Distinct order keys of a bf16 value: one histogram bin each.</summary>
    public const int Bins = 65536;
    private const uint Threads = 1024;
    private readonly CudaFunction _sample;

    public SamplingKernels(KernelCompiler compiler)
    {
        ArgumentNullException.ThrowIfNull(compiler);
        _sample = compiler.Load(KernelSource.Load("sampling.cu"), "sampling.cu").Function("sample_rows");
        _sample.Programmatic = true; // PDL_ENTER
    }

    /// <summary>Workspace ints for <paramref name="blocks"/> rows sampled at once (more rows loop over the blocks).</summary>
    public static long WorkspaceLength(int blocks) => (long)Math.Max(1, blocks) * Bins;

    /// <summary>
    /// output[r] = the token of row r of <paramref name="logits"/> (rows, vocab) bf16 under rowParams[r]. The workspace
    /// (<see cref="WorkspaceLength"/>) decides how many rows run in parallel. Row parameters are checked on the host
    /// before upload (<see cref="Validate"/>); the kernel cannot report errors.
    /// </summary>
    public void Sample(CudaStream stream, DeviceSpan<ushort> logits, int rows, int vocab, DeviceSpan<SampleRow> rowParams,
        DeviceSpan<int> workspace, DeviceSpan<int> output)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ElementwiseKernels.NonNegative(rows, nameof(rows));
        ElementwiseKernels.Positive(vocab, nameof(vocab));
        if (rows == 0) return;
        logits.Require((long)rows * vocab, nameof(logits), "rows * vocab");
        rowParams.Require(rows, nameof(rowParams), "rows");
        workspace.Require(Bins, nameof(workspace), "one histogram of 65536 bins");
        output.Require(rows, nameof(output), "rows");
        uint blocks = (uint)Math.Min(rows, workspace.Length / Bins);
        var p = new SampleParams { Logits = logits.Pointer, Rows = rowParams.Pointer, Hist = workspace.Pointer, Out = output.Pointer, Count = rows, Vocab = vocab };
        _sample.Launch(stream, (blocks, 1, 1), Threads, 0, p);
    }

    /// <summary>Throws naming the row and field unless temperature ≥ 0, top-k ≥ 0, top-p in (0, 1] and uniform in [0, 1).</summary>
    public static void Validate(ReadOnlySpan<SampleRow> rows)
    {
        for (int r = 0; r < rows.Length; r++)
        {
            var q = rows[r];
            if (!float.IsFinite(q.Temperature) || q.Temperature < 0)
                throw new ArgumentOutOfRangeException(nameof(rows), q.Temperature, $"row {r}: temperature must be finite and ≥ 0");
            if (q.TopK < 0) throw new ArgumentOutOfRangeException(nameof(rows), q.TopK, $"row {r}: top-k must be ≥ 0");
            if (float.IsNaN(q.TopP) || q.TopP <= 0 || q.TopP > 1)
                throw new ArgumentOutOfRangeException(nameof(rows), q.TopP, $"row {r}: top-p must be in (0, 1]");
            if (!q.IsGreedy && (double.IsNaN(q.Uniform) || q.Uniform < 0 || q.Uniform >= 1))
                throw new ArgumentOutOfRangeException(nameof(rows), q.Uniform, $"row {r}: the uniform must be in [0, 1)");
        }
    }

    /// <summary>The order key of a bf16 value (raw bits): ordered like the values, −0 = +0, NaN = 0 (below everything).</summary>
    public static int OrderKey(ushort b)
    {
        if ((b & 0x7fff) > 0x7f80) return 0;
        if (b == 0x8000) b = 0;
        return (b & 0x8000) != 0 ? ~b & 0xffff : b | 0x8000;
    }

    /// <summary>The f32 value of an order key (inverse of <see cref="OrderKey"/> for non-NaN values).</summary>
    public static float KeyValue(int key)
    {
        int bits = (key & 0x8000) != 0 ? key & 0x7fff : ~key & 0xffff;
        return BitConverter.Int32BitsToSingle(bits << 16);
    }

    /// <summary>
    /// sampling.cu's algorithm for one row, sequentially: the token it picks for <paramref name="logits"/> (vocab, bf16
    /// bits). Same formulas per token as the kernel; only the order of the floating-point sums differs.
    /// </summary>
    public static int Reference(ReadOnlySpan<ushort> logits, SampleRow q)
    {
        int n = logits.Length;
        if (n == 0) throw new ArgumentException("no logits", nameof(logits));
        Validate([q]);
        if (q.IsGreedy)
        {
            int bk = -1, bi = 0;
            for (int i = 0; i < n; i++) { int k = OrderKey(logits[i]); if (k > bk) { bk = k; bi = i; } }
            return bi;
        }
        var hist = new int[Bins];
        foreach (var b in logits) { int k = OrderKey(b); if (k != 0) hist[k]++; }
        int maxKey = -1;
        for (int k = Bins - 1; k > 0 && maxKey < 0; k--) if (hist[k] > 0) maxKey = k;
        if (maxKey < 0) return 0;
        int kth = 1;
        if (q.TopK > 0 && q.TopK < n)
        {
            int acc = 0;
            for (int k = Bins - 1; k > 0; k--)
            {
                acc += hist[k];
                if (acc >= q.TopK) { kth = k; break; }
            }
        }
        double t = q.Temperature, m = KeyValue(maxKey) / t;
        double E(int k) => Math.Exp(KeyValue(k) / t - m);
        double sum = 0;
        for (int k = Bins - 1; k >= kth; k--) if (hist[k] > 0) sum += hist[k] * E(k);

        bool topP = q.TopP < 1f;
        double pp = q.TopP, kept = 1;
        int cut = 0, cutKeep = 0;
        if (topP)
        {
            double a = 0, candMass = 0;
            int cand = -1;
            for (int k = Bins - 1; k >= kth; k--)
            {
                if (hist[k] == 0) continue;
                if (a < pp) { cand = k; candMass = a; }
                a += hist[k] * (E(k) / sum);
            }
            cut = cand;
            double pr = E(cut) / sum, before = candMass;
            if (pr > 0) while (cutKeep < hist[cut] && before < pp) { before += pr; cutKeep++; }
            else cutKeep = hist[cut];
            kept = before;
        }

        double cum = 0;
        int rank = 0, last = -1;
        for (int i = 0; i < n; i++)
        {
            int k = OrderKey(logits[i]);
            if (k == 0 || k < kth || k < cut) continue;
            if (k == cut && rank++ >= cutKeep) continue;
            double pr = E(k) / sum;
            if (topP) pr /= kept;
            if (pr <= 0) continue;
            last = i;
            cum += pr;
            if (q.Uniform < cum) return i;
        }
        return last >= 0 ? last : 0;
    }

    /// <summary>One row's parameters, the twin of sampling.cu's SampleRow (24 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct SampleRow(double uniform, float temperature, int topK, float topP)
    {
        public double Uniform = uniform;
        public float Temperature = temperature;
        public int TopK = topK;
        public float TopP = topP;
        private readonly int _pad = 0;

        /// <summary>Temperature 0 or top-k 1: the argmax, no draw.</summary>
        public readonly bool IsGreedy => Temperature <= 0f || TopK == 1;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct SampleParams { public ulong Logits, Rows, Hist, Out; public int Count, Vocab; }
}

using Actors.Kernels.Cpu;
using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Kernels.Tests.Cuda;

/// <summary>
/// First timings of the foundation kernels at Llama-3-8B shape (32 heads / 8 KV heads, head dim 128, hidden 4096,
/// intermediate 14336), measured with CUDA events: mean of 10 runs after 3 warm-ups. Runs only when
/// ACTORS_GPU_TIMINGS=1 (scripts/gpu/on-device.sh sets it); appends a table to $ACTORS_GPU_REPORT when set.
/// Not a benchmark suite: a baseline for the optimisation work of issue 3.
/// </summary>
[Collection("cuda")]
public class GpuTimings
{
    private static void Enabled()
    {
        if (Environment.GetEnvironmentVariable("ACTORS_GPU_TIMINGS") != "1") Assert.Skip("timings run only with ACTORS_GPU_TIMINGS=1");
    }

    private static float Time(CudaStream stream, Action<CudaStream> work)
    {
        for (int i = 0; i < 3; i++) work(stream);
        using var start = new CudaEvent(stream.Device);
        using var end = new CudaEvent(stream.Device);
        start.Record(stream);
        for (int i = 0; i < 10; i++) work(stream);
        end.Record(stream);
        return CudaEvent.ElapsedMilliseconds(start, end) / 10;
    }

    private static void Report(string line)
    {
        string? path = Environment.GetEnvironmentVariable("ACTORS_GPU_REPORT");
        if (!string.IsNullOrEmpty(path)) File.AppendAllText(path, line + Environment.NewLine);
        TestContext.Current.SendDiagnosticMessage(line);
    }

    private static DeviceBuffer<ushort> RandomBf16(Gpu gpu, long length, int seed)
    {
        var rng = new Random(seed);
        var host = new ushort[length];
        for (long i = 0; i < length; i++) host[i] = Bf16.FromSingle((float)(rng.NextDouble() * 2 - 1));
        var b = gpu.Device.Allocate<ushort>(length);
        b.Upload(host);
        return b;
    }

    [Fact]
    public void Gemm_bf16_tflops()
    {
        Enabled();
        var gpu = Gpu.Require();
        const int rows = 8192, k = 4096, n = 14336;
        using var x = RandomBf16(gpu, (long)rows * k, 1);
        using var w = RandomBf16(gpu, (long)n * k, 2);
        using var y = gpu.Device.Allocate<ushort>((long)rows * n);
        using var stream = gpu.Device.CreateStream();
        float ms = Time(stream, s => gpu.Matmul.Bf16(s, x, w, y, rows, k, n));
        double tflops = 2.0 * rows * k * n / (ms * 1e-3) / 1e12;
        Report($"| {gpu.Device.Name} | cuBLASLt bf16 GEMM {rows}x{k}x{n} (random data) | {ms:F3} ms | {tflops:F0} TFLOP/s |");
        Assert.True(ms > 0);
    }

    private static readonly Lazy<AttentionKernels> SimpleKernels = new(() => new AttentionKernels(Gpu.Require().Compiler, simpleOnly: true));

    /// <summary>The launcher's default kernels (fast where they apply), or the simple ones as the baseline.</summary>
    private static (AttentionKernels Kernels, string Name) Attention(Gpu gpu, bool simple, bool fast) =>
        simple ? (SimpleKernels.Value, "simple kernel") : (gpu.Attention, fast ? "fast kernel" : "simple kernel");

    [Theory]
    [InlineData(1, 8192, false)]
    [InlineData(32, 8192, false)]
    [InlineData(1, 32768, false)]
    [InlineData(1, 8192, true)]
    [InlineData(32, 8192, true)]
    [InlineData(1, 32768, true)]
    public void Decode_attention_bandwidth(int seqs, int context, bool simple)
    {
        Enabled();
        var gpu = Gpu.Require();
        var (attention, kernel) = Attention(gpu, simple, gpu.Attention.DecodeUsesVector(128, 4));
        var layout = new KvLayout(PageSize: 16, Layers: 1, KvHeads: 8, HeadDim: 128);
        const int heads = 32;
        int pagesPerSeq = context / layout.PageSize;
        using var pool = gpu.Device.Allocate<ushort>((long)seqs * pagesPerSeq * layout.PageStride);
        pool.Clear();
        var tables = new int[seqs * pagesPerSeq];
        var order = Enumerable.Range(0, tables.Length).ToArray();
        new Random(3).Shuffle(order); // scattered pages, as a real pool
        order.CopyTo(tables, 0);
        using var dTables = gpu.Upload<int>(tables);
        using var lens = gpu.Upload<int>(Enumerable.Repeat(context, seqs).ToArray());
        using var q = RandomBf16(gpu, seqs * heads * 128, 4);
        using var o = gpu.Device.Allocate<ushort>(seqs * heads * 128);
        using var work = gpu.Device.Allocate<float>(AttentionKernels.DecodeWorkspaceLength(seqs, heads, 8, 128, context));
        using var stream = gpu.Device.CreateStream();
        float ms = Time(stream, s => attention.Decode(s, q, seqs, heads, pool, layout, 0, dTables, pagesPerSeq, lens, context,
            0.0884f, work, o));
        double bytes = (double)seqs * context * layout.TokenStride * 2 * 2; // K and V, bf16
        double tbps = bytes / (ms * 1e-3) / 1e12;
        Report($"| {gpu.Device.Name} | paged decode attention ({kernel}), {seqs} seq x {context} ctx, 32/8 heads, d 128 | {ms:F3} ms | {tbps:F2} TB/s ({tbps / 3.0:P0} of 3.0) |");
        Assert.True(ms > 0);
    }

    [Theory]
    [InlineData(8192, false, 0)]   // the launcher's default: paged_prefill_wgmma on an H100 / H200, else paged_prefill_fa128g
    [InlineData(32768, false, 0)]
    [InlineData(8192, false, -1)]  // the GQA-shared mma.sync kernel (paged_prefill_fa128g) with the wgmma one off
    [InlineData(32768, false, -1)]
    [InlineData(8192, false, 128)] // the one-head 128-row kernel (paged_prefill_fa128), the previous default
    [InlineData(32768, false, 128)]
    [InlineData(8192, false, 64)]  // the 64-row FlashAttention-2 kernel, the previous default
    [InlineData(32768, false, 64)]
    [InlineData(8192, true, 0)] // the baseline (32K with the simple kernel would take ~40 s)
    public void Prefill_attention_tflops(int tokens, bool simple, int flashRows)
    {
        Enabled();
        var gpu = Gpu.Require();
        var (attention, kernel) = Attention(gpu, simple, gpu.Attention.PrefillUsesFlash(128));
        if (tokens > 8192 && kernel == "simple kernel") Assert.Skip("the simple prefill kernel is timed at 8K only");
        if (flashRows == -1)
        {
            if (kernel != "fast kernel" || !gpu.Attention.UseWgmmaPrefill) Assert.Skip("the wgmma prefill is not the default here: the default row times the mma.sync kernel");
            attention = new AttentionKernels(gpu.Compiler, simpleOnly: false) { UseWgmmaPrefill = false };
        }
        else if (flashRows != 0)
        {
            if (kernel != "fast kernel") Assert.Skip("the flash prefill kernels are not in use");
            if (flashRows == 128 && gpu.Attention.FlashPrefillRows != 128) Assert.Skip("the 128-row kernels do not run on this device");
            // 128: the one-head kernel (GQA sharing off); 64: the 64-row kernel
            if (flashRows != gpu.Attention.FlashPrefillRows || (flashRows == 128 && gpu.Attention.UseGqaPrefill))
                attention = new AttentionKernels(gpu.Compiler, simpleOnly: false) { FlashPrefillRows = flashRows, UseGqaPrefill = false, UseWgmmaPrefill = false };
        }
        string flashName = attention.PrefillUsesWgmma(128, 32, 8, 16)
            ? "wgmma + TMA, warp-specialised, 128-row blocks, GQA-shared (4 heads x 32 positions)"
            : $"FlashAttention-2 mma, {attention.FlashPrefillRows}-row blocks"
                + (attention.PrefillUsesGqa(128, 32, 8) ? ", GQA-shared (4 heads x 32 positions)" : ", one head");
        var layout = new KvLayout(PageSize: 16, Layers: 1, KvHeads: 8, HeadDim: 128);
        const int heads = 32;
        int pages = tokens / layout.PageSize;
        using var pool = RandomBf16(gpu, (long)pages * layout.PageStride, 5);
        using var table = gpu.Upload<int>(Enumerable.Range(0, pages).ToArray());
        using var q = RandomBf16(gpu, (long)tokens * heads * 128, 6);
        using var o = gpu.Device.Allocate<ushort>((long)tokens * heads * 128);
        using var stream = gpu.Device.CreateStream();
        float ms = Time(stream, s => attention.Prefill(s, q, tokens, heads, 0, pool, layout, 0, table, 0.0884f, o));
        double flops = 4.0 * tokens * (tokens + 1) / 2 * 128 * heads; // QK^T and PV over the causal half
        Report($"| {gpu.Device.Name} | paged prefill attention ({(kernel == "fast kernel" ? flashName : kernel)}), {tokens} tokens, 32/8 heads, d 128 | {ms:F3} ms | {flops / (ms * 1e-3) / 1e12:F1} TFLOP/s |");
        Assert.True(ms > 0);
    }

    [Fact]
    public void Rmsnorm_bandwidth()
    {
        Enabled();
        var gpu = Gpu.Require();
        const int rows = 8192, dim = 4096;
        using var res = RandomBf16(gpu, (long)rows * dim, 7);
        using var x = RandomBf16(gpu, (long)rows * dim, 8);
        using var wt = RandomBf16(gpu, dim, 9);
        using var y = gpu.Device.Allocate<ushort>((long)rows * dim);
        using var stream = gpu.Device.CreateStream();
        float ms = Time(stream, s => gpu.Elementwise.AddRmsNorm(s, res, x, wt, y, rows, dim, 1e-5f));
        double bytes = (double)rows * dim * 2 * 4; // read residual and x, write residual and y
        Report($"| {gpu.Device.Name} | add + RMSNorm {rows}x{dim} | {ms:F3} ms | {bytes / (ms * 1e-3) / 1e12:F2} TB/s |");
        Assert.True(ms > 0);
    }
}

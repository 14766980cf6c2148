using Actors.Kernels.Cpu;
using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Kernels.Tests.Cuda;

/// <summary>
/// Timings of sampling.cu and qkv_rope.cu at Llama-3-8B shape (vocab 128256; 32 heads / 8 KV heads, head dim 128),
/// CUDA events, mean of 10 runs after 3 warm-ups. Runs only when ACTORS_GPU_TIMINGS=1, like <see cref="GpuTimings"/>;
/// appends to $ACTORS_GPU_REPORT when set.
/// </summary>
[Collection("cuda")]
public class SamplingQkvTimings
{
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

    private static Gpu Enabled()
    {
        if (Environment.GetEnvironmentVariable("ACTORS_GPU_TIMINGS") != "1") Assert.Skip("timings run only with ACTORS_GPU_TIMINGS=1");
        return Gpu.Require();
    }

    [Theory]
    [InlineData(1, 0.8f, 50, 0.9f)]
    [InlineData(32, 0.8f, 50, 0.9f)]
    [InlineData(32, 1.0f, 0, 0.95f)]
    [InlineData(32, 0.7f, 0, 1f)]
    public void Sample_rows_microseconds(int rows, float temperature, int topK, float topP)
    {
        var gpu = Enabled();
        const int vocab = 128256;
        var rng = new Random(5);
        var host = new ushort[(long)rows * vocab];
        for (long i = 0; i < host.Length; i++) host[i] = Bf16.FromSingle((float)((rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5) * 4));
        using var logits = gpu.Upload<ushort>(host);
        using var dRows = gpu.Upload<SamplingKernels.SampleRow>(Enumerable.Range(0, rows).Select(r => new SamplingKernels.SampleRow(rng.NextDouble(), temperature, topK, topP)).ToArray());
        using var ws = gpu.Device.Allocate<int>(SamplingKernels.WorkspaceLength(64));
        using var output = gpu.Device.Allocate<int>(rows);
        using var stream = gpu.Device.CreateStream();
        float ms = Time(stream, s => gpu.Sampling.Sample(s, logits, rows, vocab, dRows, ws, output));
        Report($"| sample_rows | {rows} rows × {vocab}, T {temperature}, top-k {topK}, top-p {topP} | {ms * 1000:F1} µs |");
    }

    [Theory]
    [InlineData(32)]
    [InlineData(8192)]
    public void Qkv_rope_microseconds(int tokens)
    {
        var gpu = Enabled();
        const int nh = 32, nkv = 8, d = 128, pageSize = 16;
        int width = (nh + 2 * nkv) * d;
        var layout = new KvLayout(pageSize, 1, nkv, d);
        int pages = tokens / pageSize + 1;
        using var qkv = gpu.Device.Allocate<ushort>((long)tokens * width);
        qkv.Clear();
        using var q = gpu.Device.Allocate<ushort>((long)tokens * nh * d);
        using var pool = gpu.Device.Allocate<ushort>((long)pages * layout.PageStride);
        using var cos = gpu.Upload<float>(TestData.Random(tokens * d / 2, 1));
        using var sin = gpu.Upload<float>(TestData.Random(tokens * d / 2, 2));
        using var slots = gpu.Upload<int>(Enumerable.Range(0, tokens).ToArray());
        using var stream = gpu.Device.CreateStream();
        var kernels = new QkvRopeKernels(gpu.Compiler);
        float ms = Time(stream, s => kernels.Apply(s, qkv, tokens, width, nh, nkv, d, default, default, default, 1e-6f,
            cos, sin, tokens, default, slots, q, pool, layout, 0));
        double bytes = (double)tokens * width * 2 * 2; // read qkv, write q + k + v
        Report($"| qkv_rope_kv | {tokens} tokens, 32/8 heads × 128 | {ms * 1000:F1} µs, {bytes / (ms * 1e-3) / 1e9:F0} GB/s |");
    }
}

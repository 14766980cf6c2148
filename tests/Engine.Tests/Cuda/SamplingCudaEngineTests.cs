using Actors.Engine.Cuda;
using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;
using Actors.Engine.Tests.Runtime;
using Actors.Engine.Tests.Sampling;
using Actors.Kernels.Cuda;
using Actors.Kernels.Cuda.Kernels;

namespace Actors.Engine.Tests.Cuda;

/// <summary>
/// Sampling on the device (sampling.cu) against the Engine's Sampler, the single definition of the semantics: the
/// kernel on random bf16 logits of real vocabulary sizes, and CudaModelRunner.ForwardSample against the Sampler applied
/// to the same runner's copied logits. Skips without a usable CUDA device.
/// </summary>
[Collection("cuda-engine")]
public class SamplingCudaEngineTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(1000, 41)]
    [InlineData(32003, 23)]
    [InlineData(151936, 17)]
    public void Kernel_picks_what_the_Sampler_picks(int vocab, int rows)
    {
        CudaGpu.Require();
        Assert.True(CudaDevice.TryOpen(0, out var device, out var reason), reason);
        using var dev = device!;
        var compiler = new KernelCompiler(dev, Path.Combine(Path.GetTempPath(), "actors-sampling-tests-" + Environment.ProcessId));
        var kernels = new SamplingKernels(compiler);
        var rng = new Random(vocab ^ rows);
        var logits = new float[rows][];
        var bits = new ushort[(long)rows * vocab];
        var rowParams = new SamplingRow[rows];
        var deviceRows = new SamplingKernels.SampleRow[rows];
        for (int r = 0; r < rows; r++)
        {
            logits[r] = SamplingRowTests.Logits(vocab, vocab + 31 * r, (float)(0.5 + 4 * rng.NextDouble()));
            Bf16.FromSingles(logits[r]).CopyTo(bits, (long)r * vocab);
            rowParams[r] = SamplingRowTests.RandomRow(rng, vocab);
            deviceRows[r] = new SamplingKernels.SampleRow(rowParams[r].Uniform, rowParams[r].Temperature, rowParams[r].TopK, rowParams[r].TopP);
        }
        using var dLogits = dev.Allocate<ushort>(bits.Length);
        dLogits.Upload(bits);
        using var dRows = dev.Allocate<SamplingKernels.SampleRow>(rows);
        dRows.Upload(deviceRows);
        using var dWs = dev.Allocate<int>(SamplingKernels.WorkspaceLength(8));
        using var dOut = dev.Allocate<int>(rows);
        using var stream = dev.CreateStream();
        kernels.Sample(stream, dLogits, rows, vocab, dRows, dWs, dOut);
        stream.Synchronize();
        var got = dOut.ToArray();
        for (int r = 0; r < rows; r++) SamplingRowTests.SamePick(logits[r], rowParams[r], got[r], $"vocab {vocab}, row {r}");
    }

    [Theory]
    [MemberData(nameof(TestModels.Families), MemberType = typeof(TestModels))]
    public void Runner_samples_on_the_device_as_the_Sampler_does_on_its_logits(string family)
    {
        CudaGpu.Require();
        var config = TestModels.ByName(family);
        Assert.True(CudaModelRunner.TryOpenDevice(0, out var device, out var reason), reason);
        using var runner = CudaModelRunner.Create(device!, config, TestModels.Weights(config), new EngineOptions { PageSize = 4, KvPages = 32 }, 64);
        var a = TestModels.Tokens(13, 1);
        var b = TestModels.Tokens(9, 2);
        var c = TestModels.Tokens(1, 3);
        ForwardChunk[] Batch() =>
        [
            new(a, 0, Enumerable.Range(0, 4).ToArray(), 13, LogitsRows.All),
            new(b, 0, Enumerable.Range(4, 3).ToArray(), 9, LogitsRows.Last),
            new(c, 0, new[] { 7 }, 1, LogitsRows.Last),
        ];
        var logits = runner.Forward(Batch());
        int v = config.VocabSize, count = logits.Length / v;
        Assert.Equal(15, count);
        var rng = new Random(family.Length);
        for (int trial = 0; trial < 20; trial++)
        {
            var rows = Enumerable.Range(0, count).Select(_ => SamplingRowTests.RandomRow(rng, v)).ToArray();
            if (trial == 0) rows = rows.Select(r => r with { Temperature = 0 }).ToArray(); // the all-greedy path
            // The same chunks again rewrite the same K and V, so the step computes the same logits.
            var picked = runner.ForwardSample(Batch(), rows);
            Assert.Equal(count, picked.Length);
            for (int r = 0; r < count; r++)
                SamplingRowTests.SamePick(logits.AsSpan(r * v, v).ToArray(), rows[r], picked[r], $"{family} trial {trial} row {r}");
        }
        Assert.Throws<ArgumentException>(() => runner.ForwardSample(Batch(), new SamplingRow[3]));
        Assert.Throws<ArgumentOutOfRangeException>(() => runner.ForwardSample(Batch(),
            Enumerable.Repeat(new SamplingRow(1f, 0, 1.5f, 0.5), count).ToArray()));
    }

    [Fact]
    public async Task Seeded_sampling_on_the_cuda_engine_repeats_and_varies_with_the_seed()
    {
        CudaGpu.Require();
        var config = TestModels.Llama;
        var prompt = TestModels.Tokens(11, 5);
        async Task<List<int>> Run(ulong seed)
        {
            using var engine = new InferenceEngine(config, TestModels.Weights(config), "t",
                new EngineOptions { Backend = Backend.Cuda, PageSize = 4, KvPages = 64 });
            return await EngineParityTests.Collect(engine.GenerateAsync(prompt, new SamplingParams(1.5f, 40, 0.95f, seed, 24), new HashSet<int>(), Ct));
        }
        var one = await Run(7);
        Assert.Equal(24, one.Count);
        Assert.Equal(one, await Run(7));
        var others = new[] { await Run(8), await Run(9) };
        Assert.Contains(others, o => !o.SequenceEqual(one));
    }
}

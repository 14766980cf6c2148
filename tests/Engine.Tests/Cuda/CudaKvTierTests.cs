using Actors.Engine.Cuda;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;
using Actors.Engine.Tests.Runtime;

namespace Actors.Engine.Tests.Cuda;

/// <summary>
/// The KV tiers on the CUDA engine (bf16 pages): page copies between the device pool and (pinned) host memory are
/// exact, and a session whose pages went to host, or to another engine by export and import, continues with the
/// same greedy tokens as the engine that still holds them on the device (same KV bytes, same suffix computation).
/// Skips without a device.
/// </summary>
[Collection("cuda-engine")]
public class CudaKvTierTests
{
    private static readonly IReadOnlySet<int> NoStop = new HashSet<int>();
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public void Pages_round_trip_between_the_device_pool_and_host_memory()
    {
        CudaGpu.Require();
        var config = TestModels.Qwen2;
        Assert.True(CudaModelRunner.TryOpenDevice(0, out var device, out var reason), reason);
        using var runner = CudaModelRunner.Create(device!, config, TestModels.Weights(config), new EngineOptions { PageSize = 4, KvPages = 8 }, 64);
        Assert.Equal("bf16", runner.KvDType);
        int pb = checked((int)runner.PageBytes);
        Assert.Equal(config.NumLayers * 2 * 4 * config.NumKvHeads * config.HeadDim * 2, pb);

        var data = new byte[3 * pb];
        new Random(5).NextBytes(data);
        runner.WritePages([5, 1, 6], data);
        var back = new byte[3 * pb];
        runner.ReadPages([5, 1, 6], back);
        Assert.Equal(data, back);
        var one = new byte[pb];
        runner.ReadPages([1], one);
        Assert.Equal(data.AsSpan(pb, pb).ToArray(), one);

        // Per-page buffers in pinned memory (the host pool's storage).
        using var pinned = runner.AllocateHost(2 * pb);
        runner.ReadPages([6, 5], i => pinned.Span.Slice(i * pb, pb));
        Assert.Equal(data.AsSpan(2 * pb, pb).ToArray(), pinned.Span[..pb].ToArray());
        Assert.Equal(data.AsSpan(0, pb).ToArray(), pinned.Span.Slice(pb, pb).ToArray());
        runner.WritePages([0, 2], i => pinned.Span.Slice(i * pb, pb));
        var two = new byte[2 * pb];
        runner.ReadPages([0, 2], two);
        Assert.Equal(pinned.Span.ToArray(), two);

        Assert.Throws<ArgumentException>(() => runner.ReadPages([0, 1], new byte[pb]));
        Assert.Throws<ArgumentOutOfRangeException>(() => runner.ReadPages([8], new byte[pb]));
    }

    private static InferenceEngine Engine(EngineOptions options) =>
        new(TestModels.Qwen2, TestModels.Weights(TestModels.Qwen2), "test/qwen2-cuda", options with { Backend = Backend.Cuda, ContextLength = 128 });

    private static async Task<(List<int> Tokens, KvAdmission Admission)> Run(InferenceEngine engine, int[] prompt, int n)
    {
        KvAdmission admission = default;
        var tokens = await EngineParityTests.Collect(engine.GenerateAsync(prompt, SamplingParams.Greedy(n), NoStop, a => admission = a, Ct));
        return (tokens, admission);
    }

    [Fact]
    public async Task Export_then_import_into_another_CUDA_engine_continues_with_identical_tokens()
    {
        CudaGpu.Require();
        var session = TestModels.Tokens(40, 11);
        KvExport export;
        List<int> continued;
        int[] next;
        using (var first = Engine(new EngineOptions { PageSize = 16, KvPages = 32 }))
        {
            var (reply, _) = await Run(first, session, 8);
            int[] history = [.. session, .. reply]; // 48 tokens, 47 computed: 2 full pages
            export = (await first.ExportAsync(history, Ct))!;
            Assert.NotNull(export);
            Assert.Equal("bf16", export.Format.DType);
            Assert.Equal(2, export.Pages.Count);
            Assert.All(export.Pages, p => Assert.Equal(export.Format.PageBytes, p.Length));
            next = [.. history, .. TestModels.Tokens(5, 12)];
            (continued, var onDevice) = await Run(first, next, 10);
            Assert.Equal(32, onDevice.DeviceHitTokens);
        }
        using var second = Engine(new EngineOptions { PageSize = 16, KvPages = 32 });
        Assert.Equal(32, await second.ImportAsync(export, Ct));
        var again = (await second.ExportAsync(export.Tokens, Ct))!;
        for (int i = 0; i < export.Pages.Count; i++) Assert.True(again.Pages[i].Span.SequenceEqual(export.Pages[i].Span), $"page {i}");
        var (tokens, admission) = await Run(second, next, 10);
        Assert.Equal(new KvAdmission(next.Length, 0, 32), admission);
        Assert.Equal(continued, tokens);
    }

    [Fact]
    public async Task Pages_pushed_off_the_device_swap_back_in_from_pinned_host_memory()
    {
        CudaGpu.Require();
        var session = TestModels.Tokens(40, 21);
        int[] next;
        List<int> reference;
        using (var roomy = Engine(new EngineOptions { PageSize = 16, KvPages = 32 }))
        {
            var (reply, _) = await Run(roomy, session, 8);
            next = [.. session, .. reply, .. TestModels.Tokens(5, 22)];
            (reference, var hit) = await Run(roomy, next, 10);
            Assert.Equal(32, hit.DeviceHitTokens);
        }
        using var tight = Engine(new EngineOptions { PageSize = 16, KvPages = 6, HostKvBytes = 1 << 20 });
        var (reply2, _) = await Run(tight, session, 8);
        Assert.Equal(next.Take(48), session.Concat(reply2));
        for (int i = 0; i < 2; i++) await EngineParityTests.Collect(tight.GenerateAsync(TestModels.Tokens(80, 30 + i), SamplingParams.Greedy(2), NoStop, Ct));
        Assert.Equal(new KvResidency(0, 32), tight.Probe(next.Take(48).ToArray()));
        var (tokens, admission) = await Run(tight, next, 10);
        Assert.Equal(32, admission.HostHitTokens);
        Assert.Equal(reference, tokens);
        Assert.Equal(2, tight.PageMoves.SwappedIn);
    }
}

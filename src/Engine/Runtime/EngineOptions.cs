namespace Actors.Engine.Runtime;

/// <summary>How one <see cref="InferenceEngine"/> pages, batches and sizes its KV pool. Defaults are the constants below.</summary>
public sealed record EngineOptions
{
    public const int DefaultPageSize = 16;
    public const int DefaultPrefillChunkTokens = 256;
    public const int DefaultMaxBatchTokens = 512;
    public const int DefaultMaxSequences = 32;
    /// <summary>Share of the memory available to the process that the KV pool takes when neither KvPages nor KvMemoryBytes is set.</summary>
    public const double DefaultKvMemoryFraction = 0.25;

    /// <summary>
    /// Default tokens per KV page on the CUDA backend: the Hopper prefill attention loads a page with 4 TMA boxes, and
    /// at 16-token pages their issue rate bounds it (H100: 437 TFLOP/s at 8K against 611 with 64-token pages).
    /// </summary>
    public const int DefaultCudaPageSize = 64;

    private readonly int? _pageSize;

    /// <summary>Tokens per KV page. When not set: <see cref="DefaultPageSize"/> on the CPU, <see cref="DefaultCudaPageSize"/> on CUDA.</summary>
    public int PageSize { get => _pageSize ?? DefaultPageSize; init => _pageSize = value; }

    /// <summary>Whether <see cref="PageSize"/> was set (otherwise the backend picks its default).</summary>
    public bool PageSizeSet => _pageSize is not null;

    /// <summary>Most prompt tokens of one sequence computed in one step (chunked prefill).</summary>
    public int PrefillChunkTokens { get; init; } = DefaultPrefillChunkTokens;

    /// <summary>Most tokens (decode tokens plus prefill chunks of all sequences) in one step.</summary>
    public int MaxBatchTokens { get; init; } = DefaultMaxBatchTokens;

    /// <summary>Most sequences running at once; the rest wait in the queue.</summary>
    public int MaxSequences { get; init; } = DefaultMaxSequences;

    /// <summary>Size of the KV pool in pages; wins over <see cref="KvMemoryBytes"/>.</summary>
    public int? KvPages { get; init; }

    /// <summary>Size of the KV pool in bytes of KV (f32 on the CPU, bf16 on CUDA), when <see cref="KvPages"/> is not set.</summary>
    public long? KvMemoryBytes { get; init; }

    /// <summary>Most bytes of host memory the host KV tier takes when <see cref="HostKvBytes"/> is not set.</summary>
    public const long DefaultMaxHostKvBytes = 16L << 30;

    /// <summary>Share of the memory available to the process the host KV tier takes at most when <see cref="HostKvBytes"/> is not set.</summary>
    public const double DefaultHostKvMemoryFraction = 0.25;

    /// <summary>
    /// Budget of the host KV page pool (ARCHITECTURE.md §3), pinned memory on CUDA, allocated as pages arrive: device
    /// pages handed out again spill there and come back on a prefix hit. 0 disables the tier. When null:
    /// min(<see cref="DefaultMaxHostKvBytes"/>, <see cref="DefaultHostKvMemoryFraction"/> of available memory).
    /// </summary>
    public long? HostKvBytes { get; init; }

    /// <summary>Most tokens per sequence; the model's max_position_embeddings when null.</summary>
    public int? ContextLength { get; init; }

    /// <summary>Share full pages between sequences with the same prefix.</summary>
    public bool EnablePrefixCaching { get; init; } = true;

    /// <summary>Cpu, Cuda, or Auto (CUDA when a device of compute capability ≥ 8.0 opens, else CPU).</summary>
    public Backend Backend { get; init; } = Backend.Auto;

    /// <summary>CUDA device ordinal.</summary>
    public int CudaDevice { get; init; }

    /// <summary>
    /// CUDA: share of the device memory still free after weights, activations and a workspace reserve that the bf16
    /// KV pool takes when neither KvPages nor KvMemoryBytes is set.
    /// </summary>
    public double KvMemoryFraction { get; init; } = DefaultCudaKvMemoryFraction;

    /// <summary>Default of <see cref="KvMemoryFraction"/>.</summary>
    public const double DefaultCudaKvMemoryFraction = 0.9;

    /// <summary>
    /// CUDA: replay decode-only steps from CUDA graphs captured per batch size and context bucket (on by default: on the
    /// H100 they beat plain launches, 7.09 against 7.16 ms per token after 8K, 1612 against 1584 tokens/s for 32
    /// sessions; see docs/benchmarks.md).
    /// </summary>
    public bool CudaGraphs { get; init; } = true;

    /// <summary>The host tier budget in bytes: <see cref="HostKvBytes"/> or the default.</summary>
    public long ResolveHostKvBytes() =>
        HostKvBytes ?? Math.Min(DefaultMaxHostKvBytes, (long)(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes * DefaultHostKvMemoryFraction));

    internal void Validate()
    {
        static void Positive(int value, string name)
        {
            if (value < 1) throw new ArgumentOutOfRangeException(name, value, $"EngineOptions.{name} must be ≥ 1");
        }
        Positive(PageSize, nameof(PageSize));
        Positive(PrefillChunkTokens, nameof(PrefillChunkTokens));
        Positive(MaxBatchTokens, nameof(MaxBatchTokens));
        Positive(MaxSequences, nameof(MaxSequences));
        if (KvPages is { } pages) Positive(pages, nameof(KvPages));
        if (KvMemoryBytes is < 1) throw new ArgumentOutOfRangeException(nameof(KvMemoryBytes), KvMemoryBytes, "EngineOptions.KvMemoryBytes must be ≥ 1");
        if (ContextLength is { } ctx) Positive(ctx, nameof(ContextLength));
        if (HostKvBytes is < 0) throw new ArgumentOutOfRangeException(nameof(HostKvBytes), HostKvBytes, "EngineOptions.HostKvBytes must be ≥ 0 (0 disables the host KV tier)");
        if (!(KvMemoryFraction > 0 && KvMemoryFraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(KvMemoryFraction), KvMemoryFraction, "EngineOptions.KvMemoryFraction must be in (0, 1]");

    }
}

/// <summary>A snapshot of an engine's counters.</summary>
public readonly record struct EngineMetrics(
    int TotalPages, int FreePages, int WaitingSequences, int RunningSequences,
    long PrefixHitTokens, long Steps, long Preemptions, long GeneratedTokens);

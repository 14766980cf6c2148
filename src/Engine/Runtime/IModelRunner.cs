using Actors.Engine.Model;
using Actors.Kernels.Cpu;

namespace Actors.Engine.Runtime;

/// <summary>Which device runs the model.</summary>
public enum Backend { Auto, Cpu, Cuda }

/// <summary>
/// The model forward of one backend over its own KV page pool. The engine owns page allocation (BlockManager) and
/// hands page ids in ForwardChunk.PageTable; the runner owns the pool's storage. Not thread-safe: the engine loop drives it.
/// </summary>
public interface IModelRunner : IDisposable
{
    ModelConfig Config { get; }

    /// <summary>Pages in the pool (ids 0 .. KvPages − 1).</summary>
    int KvPages { get; }

    /// <summary>The page layout of the pool (elements f32 on the CPU, bf16 on CUDA).</summary>
    KvLayout KvLayout { get; }

    /// <summary>Backend and device in words, e.g. "CUDA: NVIDIA H100 (sm_90), KV 12345 pages bf16".</summary>
    string Description { get; }

    /// <summary>See <see cref="Transformer.RopeVariant"/>: part of page identity for length-dependent RoPE.</summary>
    string RopeVariant(int seqLen);

    /// <summary>
    /// Runs one step: writes every chunk's K and V into its pages, attends, and returns the logits asked for on the
    /// host, (rows, vocab) row-major, chunks in order (per chunk: none, its last token, or all its tokens).
    /// </summary>
    float[] Forward(IReadOnlyList<ForwardChunk> batch);

    /// <summary>
    /// As <see cref="Forward"/> but returns only each logits row's argmax (lowest index on ties, as greedy sampling):
    /// on CUDA computed on the device, so the rows of logits never cross to the host.
    /// </summary>
    int[] ForwardArgmax(IReadOnlyList<ForwardChunk> batch);

    /// <summary>
    /// As <see cref="Forward"/> but returns each logits row's token under rows[r] (one per logits row, in order), as
    /// <see cref="Sampling.Sampler.Sample(ReadOnlySpan{float}, Sampling.SamplingRow)"/> picks it. This default samples
    /// the host logits with the Sampler; CUDA samples on the device, so no logits cross to the host.
    /// </summary>
    int[] ForwardSample(IReadOnlyList<ForwardChunk> batch, ReadOnlySpan<Sampling.SamplingRow> rows)
    {
        var logits = Forward(batch);
        int v = Config.VocabSize, count = logits.Length / v;
        if (rows.Length != count)
            throw new ArgumentException($"{rows.Length} sampling rows for {count} logits rows", nameof(rows));
        var result = new int[count];
        for (int r = 0; r < count; r++) result[r] = Sampling.Sampler.Sample(logits.AsSpan(r * v, v), rows[r]);
        return result;
    }
}

/// <summary>The f32 CPU backend: <see cref="Transformer"/> over a <see cref="Paging.KvCache"/>.</summary>
public sealed class CpuModelRunner : IModelRunner
{
    private readonly Transformer _model;
    private readonly Paging.KvCache _cache;

    public CpuModelRunner(ModelConfig config, IWeightSource weights, int pageSize, Func<KvLayout, int> pages, string? reason = null)
    {
        ArgumentNullException.ThrowIfNull(pages);
        _model = new Transformer(config, weights);
        KvLayout = _model.KvLayout(pageSize);
        _cache = new Paging.KvCache(KvLayout, pages(KvLayout));
        Description = $"CPU f32, {Environment.ProcessorCount} cores, KV {_cache.Pages} pages of {pageSize} tokens" +
                      (reason is null ? "" : $" ({reason})");
    }

    public ModelConfig Config => _model.Config;
    public int KvPages => _cache.Pages;
    public KvLayout KvLayout { get; }
    public string Description { get; }
    public string RopeVariant(int seqLen) => _model.RopeVariant(seqLen);
    public float[] Forward(IReadOnlyList<ForwardChunk> batch) => _model.Forward(batch, _cache);

    public int[] ForwardArgmax(IReadOnlyList<ForwardChunk> batch)
    {
        var logits = Forward(batch);
        int v = Config.VocabSize;
        var result = new int[logits.Length / v];
        for (int r = 0; r < result.Length; r++) result[r] = Sampling.Sampler.Argmax(logits.AsSpan(r * v, v));
        return result;
    }
    public void Dispose() { }
}

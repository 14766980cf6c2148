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

    /// <summary>The device's energy and power sensors, which the engine reports as metrics; null where there are none
    /// (the CPU, or a card without NVML).</summary>
    EngineMeters.DevicePower? Power => null;

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

    /// <summary>Element type of the pool's KV: "f32" (CPU) or "bf16" (CUDA).</summary>
    string KvDType { get; }

    /// <summary>Bytes of one page: KvLayout.PageStride elements of <see cref="KvDType"/>.</summary>
    long PageBytes { get; }

    /// <summary>
    /// Copies pages <paramref name="pages"/>[i] (each one contiguous block of <see cref="PageBytes"/>) into
    /// <paramref name="destination"/> back to back, complete on return. Runs after the work already enqueued on the pool.
    /// </summary>
    void ReadPages(ReadOnlySpan<int> pages, Span<byte> destination);

    /// <summary>Copies <see cref="PageBytes"/> each from <paramref name="source"/> back to back into <paramref name="pages"/>, complete on return.</summary>
    void WritePages(ReadOnlySpan<int> pages, ReadOnlySpan<byte> source);

    /// <summary>As <see cref="ReadPages(ReadOnlySpan{int}, Span{byte})"/> into a buffer per page (host pool slots): one batch, one wait.</summary>
    void ReadPages(ReadOnlySpan<int> pages, Paging.PageBuffer destination);

    /// <summary>As <see cref="WritePages(ReadOnlySpan{int}, ReadOnlySpan{byte})"/> from a buffer per page.</summary>
    void WritePages(ReadOnlySpan<int> pages, Paging.PageBuffer source);

    /// <summary>Host memory for the host page pool: pinned on CUDA (copies at PCIe speed), an array on the CPU.</summary>
    Paging.IHostBuffer AllocateHost(int bytes);
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

    /// <summary><see cref="Transformer.TrimLastLayer"/> of the model (on by default).</summary>
    public bool TrimLastLayer { get => _model.TrimLastLayer; set => _model.TrimLastLayer = value; }

    /// <summary><see cref="Transformer.TrimmedSteps"/> of the model.</summary>
    public long TrimmedSteps => _model.TrimmedSteps;

    public int KvPages => _cache.Pages;
    public KvLayout KvLayout { get; }
    public string Description { get; }
    public string RopeVariant(int seqLen) => _model.RopeVariant(seqLen);
    public float[] Forward(IReadOnlyList<ForwardChunk> batch) => _model.Forward(batch, _cache);

    public string KvDType => "f32";

    public long PageBytes => (long)KvLayout.PageStride * sizeof(float);

    public void ReadPages(ReadOnlySpan<int> pages, Span<byte> destination)
    {
        CheckBytes(pages.Length, destination.Length, nameof(destination));
        for (int i = 0; i < pages.Length; i++) PageBytesOf(pages[i]).CopyTo(destination.Slice((int)(i * PageBytes), (int)PageBytes));
    }

    public void WritePages(ReadOnlySpan<int> pages, ReadOnlySpan<byte> source)
    {
        CheckBytes(pages.Length, source.Length, nameof(source));
        for (int i = 0; i < pages.Length; i++) source.Slice((int)(i * PageBytes), (int)PageBytes).CopyTo(PageBytesOf(pages[i]));
    }

    public void ReadPages(ReadOnlySpan<int> pages, Paging.PageBuffer destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        for (int i = 0; i < pages.Length; i++)
        {
            var d = destination(i);
            CheckBytes(1, d.Length, $"destination({i})");
            PageBytesOf(pages[i]).CopyTo(d);
        }
    }

    public void WritePages(ReadOnlySpan<int> pages, Paging.PageBuffer source)
    {
        ArgumentNullException.ThrowIfNull(source);
        for (int i = 0; i < pages.Length; i++)
        {
            var s = source(i);
            CheckBytes(1, s.Length, $"source({i})");
            s.CopyTo(PageBytesOf(pages[i]));
        }
    }

    public Paging.IHostBuffer AllocateHost(int bytes) => new Paging.ArrayHostBuffer(bytes);

    // One page of the f32 pool as bytes: (layers, {K,V}, pageSize, kvHeads, headDim).
    private Span<byte> PageBytesOf(int page)
    {
        if ((uint)page >= (uint)_cache.Pages) throw new ArgumentOutOfRangeException(nameof(page), page, $"the KV pool has {_cache.Pages} pages");
        return System.Runtime.InteropServices.MemoryMarshal.AsBytes(_cache.Pool.AsSpan(page * KvLayout.PageStride, KvLayout.PageStride));
    }

    private void CheckBytes(int pages, int bytes, string argument)
    {
        if (bytes != pages * PageBytes)
            throw new ArgumentException($"{argument} has {bytes} bytes; {pages} KV pages of {PageBytes} bytes need {pages * PageBytes}", argument);
    }

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

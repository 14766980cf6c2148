using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Actors.Engine.Model;
using Actors.Engine.Paging;
using Actors.Engine.Sampling;

namespace Actors.Engine.Runtime;

/// <summary>
/// One model on the CPU: weights, the paged KV pool, the block manager and the scheduler, driven by a dedicated
/// thread whose loop is schedule → run the model over the step's batch → sample and stream tokens. Sequences are
/// batched continuously (decode tokens and prefill chunks of many sequences in one step); when KV pages run out new
/// requests wait in the queue and running ones are preempted, never failed. Thread-safe to call.
/// </summary>
public sealed class InferenceEngine : IDisposable
{
    private readonly IWeightSource _weights;
    private readonly IModelRunner _model;
    private readonly BlockManager _blocks;
    private readonly Scheduler _scheduler;
    private readonly EngineOptions _options;
    private readonly Thread _thread;
    private readonly AutoResetEvent _wake = new(false);
    private readonly ConcurrentQueue<Sequence> _incoming = new();
    private readonly ConcurrentQueue<Action> _actions = new();
    private readonly IReadOnlySet<int> _eos;
    private readonly object _metricsLock = new();
    private EngineMetrics _metrics;
    private long _steps, _generated, _nextId;
    private volatile bool _disposed;

    public InferenceEngine(ModelConfig config, IWeightSource weights, string modelId, EngineOptions options)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(weights);
        ArgumentNullException.ThrowIfNull(modelId);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _weights = weights;
        Config = config;
        ModelId = modelId;
        ContextLength = options.ContextLength ?? config.EffectiveContextLength;
        if (ContextLength < 1) throw new ArgumentOutOfRangeException(nameof(options), ContextLength, "context length must be ≥ 1 (EngineOptions.ContextLength or max_position_embeddings)");
        _model = CreateRunner(config, weights, options, ContextLength);
        _blocks = new BlockManager(_model.KvPages, options.PageSize, modelId, RopeProfile(config));
        _scheduler = new Scheduler(_blocks, options, _model.RopeVariant);
        _eos = new HashSet<int>(config.EosTokenIds);
        PublishMetrics();
        _thread = new Thread(Loop) { IsBackground = true, Name = $"InferenceEngine {modelId}" };
        _thread.Start();
    }

    public ModelConfig Config { get; }
    public string ModelId { get; }

    /// <summary>Most tokens (prompt + generated) one sequence may hold.</summary>
    public int ContextLength { get; }

    public int TotalPages => _model.KvPages;

    /// <summary>Which backend runs the model and, when Auto fell back to the CPU, why (e.g. "no CUDA driver: …").</summary>
    public string BackendDescription => _model.Description;

    /// <summary>The backend in use (Cpu or Cuda; never Auto).</summary>
    public Backend Backend => _model is CpuModelRunner ? Backend.Cpu : Backend.Cuda;
    public int PageSize => _options.PageSize;

    public EngineMetrics Metrics { get { lock (_metricsLock) return _metrics; } }

    /// <summary>Generates with the model's end-of-sequence ids as stop tokens.</summary>
    public IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling, CancellationToken cancellationToken = default) =>
        GenerateAsync(prompt, sampling, _eos, cancellationToken);

    /// <summary>
    /// Streams the tokens generated after <paramref name="prompt"/> until a stop token (not yielded),
    /// MaxNewTokens, or the context is full. The request joins the engine's queue when enumeration starts;
    /// cancelling (or leaving the enumeration early) ends it and frees its pages.
    /// Throws ArgumentException at once for an empty prompt, a prompt longer than the context or the KV pool,
    /// or a token id outside the vocabulary.
    /// </summary>
    public IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling, IReadOnlySet<int> stopTokenIds, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(sampling);
        ArgumentNullException.ThrowIfNull(stopTokenIds);
        ValidatePrompt(prompt);
        var sequence = new Sequence(Interlocked.Increment(ref _nextId), prompt, sampling, stopTokenIds);
        return Stream(sequence, cancellationToken);
    }

    /// <summary>
    /// Test hook: logits (tokens × vocab) for every position of <paramref name="tokens"/>, computed through the same
    /// paged path as generation in prefill chunks of <paramref name="chunkSize"/> tokens, on fresh pages (no prefix
    /// reuse) that are given back afterwards. Runs on the engine thread between steps.
    /// </summary>
    public float[] ComputeLogits(IReadOnlyList<int> tokens, int chunkSize)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ValidatePrompt(tokens);
        ArgumentOutOfRangeException.ThrowIfLessThan(chunkSize, 1);
        if (Thread.CurrentThread == _thread) throw new InvalidOperationException("ComputeLogits cannot run on the engine thread");
        var copy = tokens.ToArray();
        var done = new TaskCompletionSource<float[]>(TaskCreationOptions.RunContinuationsAsynchronously);
        _actions.Enqueue(() =>
        {
            try { done.SetResult(RunLogits(copy, chunkSize)); }
            catch (Exception e) { done.SetException(e); }
        });
        _wake.Set();
        return done.Task.GetAwaiter().GetResult();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _wake.Set();
        if (Thread.CurrentThread != _thread) _thread.Join();
        while (_incoming.TryDequeue(out var late)) late.Output.Writer.TryComplete(new ObjectDisposedException(nameof(InferenceEngine)));
        _wake.Dispose();
        _model.Dispose();
        _weights.Dispose();
    }

    private async IAsyncEnumerable<int> Stream(Sequence sequence, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        cancellationToken.ThrowIfCancellationRequested();
        _incoming.Enqueue(sequence);
        Wake();
        // The loop drains the queue when it stops; one that stopped just before the enqueue never sees it.
        if (_disposed && !_thread.IsAlive) sequence.Output.Writer.TryComplete(new ObjectDisposedException(nameof(InferenceEngine)));
        bool finished = false;
        using var registration = cancellationToken.Register(() => { sequence.Cancelled = true; Wake(); });
        try
        {
            await foreach (int token in sequence.Output.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
                yield return token;
            finished = true;
        }
        finally
        {
            if (!finished) { sequence.Cancelled = true; Wake(); }
        }
    }

    private void Wake()
    {
        try { _wake.Set(); } catch (ObjectDisposedException) { /* engine gone; nothing left to wake */ }
    }

    private void ValidatePrompt(IReadOnlyList<int> prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        if (prompt.Count == 0) throw new ArgumentException("the prompt is empty; at least one token is needed", nameof(prompt));
        if (prompt.Count > ContextLength)
            throw new ArgumentException($"the prompt has {prompt.Count} tokens, more than the context length of {ContextLength} tokens", nameof(prompt));
        int pages = _blocks.PagesFor(prompt.Count);
        if (pages > _blocks.TotalPages)
            throw new ArgumentException($"the prompt has {prompt.Count} tokens, needing {pages} KV pages; the KV pool holds {_blocks.TotalPages} pages of {_blocks.PageSize} tokens", nameof(prompt));
        for (int i = 0; i < prompt.Count; i++)
            if ((uint)prompt[i] >= (uint)Config.VocabSize)
                throw new ArgumentException($"prompt token {i} is {prompt[i]}, outside the vocabulary (size {Config.VocabSize})", nameof(prompt));
    }

    private void Loop()
    {
        while (true)
        {
            while (_incoming.TryDequeue(out var s))
            {
                if (s.Length == ContextLength) s.Output.Writer.TryComplete(); // full already: no room for a new token
                else _scheduler.Add(s);
            }
            while (_actions.TryDequeue(out var action)) action();
            if (_disposed) break;
            if (_scheduler.IsIdle) { PublishMetrics(); _wake.WaitOne(); continue; }
            try
            {
                Step();
            }
            catch (Exception e)
            {
                // A fault in the model must not kill the loop: fail the requests in flight with it and carry on.
                foreach (var s in _scheduler.All.ToList()) Finish(s, e);
            }
            PublishMetrics();
        }
        var shutdown = new ObjectDisposedException(nameof(InferenceEngine), "the engine was disposed while the request was in flight");
        foreach (var s in _scheduler.All.ToList()) Finish(s, shutdown);
        while (_incoming.TryDequeue(out var s)) s.Output.Writer.TryComplete(shutdown);
        while (_actions.TryDequeue(out var action)) action();
    }

    private void Step()
    {
        foreach (var s in _scheduler.All.Where(s => s.Cancelled).ToList()) Finish(s, null);
        var exhausted = new List<Sequence>();
        var batch = _scheduler.Schedule(exhausted);
        foreach (var s in exhausted) Finish(s, null); // alone and the pool is full: it ends as if its context were full
        if (batch.Count == 0) return;

        var chunks = new ForwardChunk[batch.Count];
        for (int i = 0; i < batch.Count; i++)
        {
            var (s, n) = batch[i];
            var tokens = CollectionsMarshal.AsSpan(s.Tokens).Slice(s.Computed, n).ToArray();
            int ropeLen = s.Computed < s.PrefillLength ? s.PrefillLength : s.Computed + n;
            var rows = s.Computed + n == s.Length ? LogitsRows.Last : LogitsRows.None;
            chunks[i] = new ForwardChunk(tokens, s.Computed, s.Pages.AsSpan().ToArray(), ropeLen, rows);
        }
        // The runner picks each row's token (on CUDA on the device: no logits copied back); every non-greedy row's
        // uniform comes from its own sequence's generator here, so both backends consume it alike.
        var sampling = new List<SamplingRow>();
        for (int i = 0; i < batch.Count; i++)
            if (chunks[i].Rows == LogitsRows.Last) sampling.Add(batch[i].Sequence.Sampler.NextRow());
        int[] picked = _model.ForwardSample(chunks, CollectionsMarshal.AsSpan(sampling));
        _steps++;

        int row = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            var (s, n) = batch[i];
            s.Computed += n;
            if (_options.EnablePrefixCaching) _blocks.MarkComputed(s.Pages, s.Tokens, s.Computed);
            if (chunks[i].Rows != LogitsRows.Last) continue;
            int token = picked[row++];
            if (s.StopTokenIds.Contains(token)) { Finish(s, null); continue; }
            s.Tokens.Add(token);
            s.Generated++;
            _generated++;
            s.Output.Writer.TryWrite(token);
            if (s.Generated >= s.Sampling.MaxNewTokens || s.Length >= ContextLength) Finish(s, null);
        }
    }

    private float[] RunLogits(int[] tokens, int chunkSize)
    {
        int t = tokens.Length, vocab = Config.VocabSize;
        var table = new PageTable(_model.RopeVariant(t));
        if (!_blocks.CanAllocate(table, tokens, reusePrefix: false))
            throw new InvalidOperationException($"{t} tokens need {_blocks.PagesFor(t)} KV pages; {_blocks.FreePages} of {_blocks.TotalPages} are free now");
        _blocks.Allocate(table, tokens, reusePrefix: false);
        try
        {
            var result = new float[(long)t * vocab];
            var pages = table.AsSpan().ToArray();
            for (int start = 0; start < t; start += chunkSize)
            {
                int n = Math.Min(chunkSize, t - start);
                var chunk = new ForwardChunk(tokens.AsMemory(start, n), start, pages, t, LogitsRows.All);
                _model.Forward([chunk]).CopyTo(result.AsSpan(start * vocab, n * vocab));
            }
            return result;
        }
        finally
        {
            _blocks.Deallocate(table);
        }
    }

    private void Finish(Sequence s, Exception? error)
    {
        _scheduler.Remove(s);
        PublishMetrics(); // pages are back before the caller sees the end of its stream
        s.Output.Writer.TryComplete(error);
    }

    private void PublishMetrics()
    {
        var m = new EngineMetrics(_blocks.TotalPages, _blocks.FreePages, _scheduler.WaitingCount, _scheduler.RunningCount,
            _scheduler.PrefixHitTokens, _steps, _scheduler.Preemptions, _generated);
        lock (_metricsLock) _metrics = m;
    }

    /// <summary>
    /// Backend choice: Cuda demands a usable device (throws with the reason otherwise); Auto takes CUDA when
    /// CudaDevice.TryOpen succeeds (compute capability ≥ 8.0) and the CPU otherwise, keeping the reason.
    /// </summary>
    private static IModelRunner CreateRunner(ModelConfig config, IWeightSource weights, EngineOptions options, int contextLength)
    {
        string? reason = null;
        if (options.Backend != Backend.Cpu)
        {
            if (Cuda.CudaModelRunner.TryOpenDevice(options.CudaDevice, out var device, out reason))
            {
                try
                {
                    return Cuda.CudaModelRunner.Create(device!, config, weights, options, contextLength);
                }
                catch
                {
                    device!.Dispose();
                    throw;
                }
            }
            if (options.Backend == Backend.Cuda)
                throw new InvalidOperationException($"EngineOptions.Backend is Cuda but no usable CUDA device: {reason}");
            reason = "CUDA not used: " + reason;
        }
        return new CpuModelRunner(config, weights, options.PageSize, layout => KvPagesFor(options, layout, contextLength), reason);
    }

    /// <summary>Pool size: KvPages, else KvMemoryBytes, else a share of available memory; no more than MaxSequences full contexts.</summary>
    private static int KvPagesFor(EngineOptions options, Kernels.Cpu.KvLayout layout, int contextLength)
    {
        if (options.KvPages is { } pages) return pages;
        long bytes = options.KvMemoryBytes
            ?? (long)(GC.GetGCMemoryInfo().TotalAvailableMemoryBytes * EngineOptions.DefaultKvMemoryFraction);
        long byMemory = KvCache.PagesFor(bytes, layout);
        long useful = (long)options.MaxSequences * ((contextLength + options.PageSize - 1) / options.PageSize);
        long byArray = Array.MaxLength / layout.PageStride;
        long result = Math.Min(Math.Min(byMemory, options.KvMemoryBytes is null ? useful : long.MaxValue), byArray);
        if (result < 1) throw new ArgumentOutOfRangeException(nameof(options), bytes, $"{bytes} bytes of KV memory hold no page of {layout.PageStride * 4L} bytes");
        return (int)result;
    }

    /// <summary>Everything about RoPE that changes K: part of page identity, so pages never cross RoPE profiles.</summary>
    private static string RopeProfile(ModelConfig c) =>
        $"theta={c.RopeTheta:R};headDim={c.HeadDim};scaling={c.RopeScaling?.ToString() ?? "none"}";
}

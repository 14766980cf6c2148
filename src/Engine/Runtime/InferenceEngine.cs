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
/// <para>
/// KV tiers (<see cref="IKvTiers"/>, ARCHITECTURE.md §3): below the device pool a host page pool of
/// <see cref="EngineOptions.HostKvBytes"/> (pinned on CUDA) catches every cached page the device hands out again;
/// admission finds a prompt's pages on the device, then in the host pool (swapped in before the step computes), and
/// computes the rest. Export, import, offload and probes run on the engine loop between steps.
/// </para>
/// </summary>
public sealed class InferenceEngine : IDisposable, IKvTiers
{
    private readonly IWeightSource? _weights;
    private readonly IModelRunner _model;
    private readonly BlockManager _blocks;
    private readonly Scheduler _scheduler;
    private readonly EngineOptions _options;
    private readonly Thread _thread;
    private readonly AutoResetEvent _wake = new(false);
    private readonly ConcurrentQueue<Sequence> _incoming = new();
    private readonly ConcurrentQueue<Action> _actions = new();
    private readonly ConcurrentQueue<LoopWork> _work = new();
    private readonly HostTier? _host;
    private readonly EngineMeters _meters;
    private KvTierStats _tierStats;
    // Totals last reported to the meters (the meters take deltas).
    private long _reportedDeviceHits, _reportedHostHits, _reportedSpilled, _reportedSwappedIn, _reportedEvictions, _reportedGenerated, _reportedPreemptions;
    private readonly IReadOnlySet<int> _eos;
    private readonly object _metricsLock = new();
    private EngineMetrics _metrics;
    private long _steps, _generated, _nextId;
    private volatile bool _disposed;

    public InferenceEngine(ModelConfig config, IWeightSource weights, string modelId, EngineOptions options)
        : this(config, weights ?? throw new ArgumentNullException(nameof(weights)), null, modelId, options)
    {
    }

    /// <summary>
    /// An engine over a runner built elsewhere (benchmarks: a CUDA runner over random weights made on the device). The
    /// engine owns and disposes the runner; options.ContextLength must be set.
    /// </summary>
    public static InferenceEngine FromRunner(IModelRunner runner, string modelId, EngineOptions options)
    {
        ArgumentNullException.ThrowIfNull(runner);
        ArgumentNullException.ThrowIfNull(options);
        if (options.ContextLength is null) throw new ArgumentException("EngineOptions.ContextLength must be set for an engine over a given runner", nameof(options));
        return new InferenceEngine(runner.Config, null, runner, modelId, options);
    }

    private InferenceEngine(ModelConfig config, IWeightSource? weights, IModelRunner? runner, string modelId, EngineOptions options)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(modelId);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _weights = weights;
        Config = config;
        ModelId = modelId;
        ContextLength = options.ContextLength ?? config.EffectiveContextLength;
        if (ContextLength < 1) throw new ArgumentOutOfRangeException(nameof(options), ContextLength, "context length must be ≥ 1 (EngineOptions.ContextLength or max_position_embeddings)");
        _model = runner ?? CreateRunner(config, weights!, ref options, ContextLength);
        if (_model.KvLayout.PageSize != options.PageSize)
        {
            if (options.PageSizeSet)
                throw new ArgumentException($"the runner's pages hold {_model.KvLayout.PageSize} tokens; EngineOptions.PageSize is {options.PageSize}", nameof(options));
            options = options with { PageSize = _model.KvLayout.PageSize };
        }
        _options = options;
        _blocks = new BlockManager(_model.KvPages, options.PageSize, modelId, RopeProfile(config));
        PageFormat = new KvPageFormat(modelId, RopeProfile(config), _model.KvDType, options.PageSize,
            _model.KvLayout.Layers, _model.KvLayout.KvHeads, _model.KvLayout.HeadDim);
        if (PageFormat.PageBytes != _model.PageBytes)
            throw new InvalidOperationException($"the runner's pages are {_model.PageBytes} bytes; the page format says {PageFormat.PageBytes}");
        long hostPages = Math.Min(int.MaxValue, options.ResolveHostKvBytes() / _model.PageBytes);
        if (hostPages > 0 && _model.PageBytes <= HostPagePool.MaxSlabBytes)
        {
            _host = new HostTier(new HostPagePool((int)hostPages, _model.PageBytes, _model.AllocateHost), _model);
            _blocks.LowerTier = _host;
        }
        _meters = new EngineMeters(modelId, power: _model.Power);
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

    /// <summary>The format of this engine's KV pages (model id, RoPE profile, "f32"/"bf16", geometry).</summary>
    public KvPageFormat PageFormat { get; }

    /// <summary>Device and host page counts as the loop last published them.</summary>
    public KvTierStats TierStats { get { lock (_metricsLock) return _tierStats; } }

    /// <summary>Prompt tokens swapped in from the host tier at admission, since creation.</summary>
    public long HostHitTokens { get { lock (_metricsLock) return _reportedHostHits; } }

    /// <summary>Pages copied device → host, host → device, and dropped from the host pool, since creation.</summary>
    public (long Spilled, long SwappedIn, long HostEvictions) PageMoves
    {
        get { lock (_metricsLock) return (_reportedSpilled, _reportedSwappedIn, _reportedEvictions); }
    }

    /// <summary>Generates with the model's end-of-sequence ids as stop tokens.</summary>
    public IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling, CancellationToken cancellationToken = default) =>
        GenerateAsync(prompt, sampling, _eos, null, cancellationToken);

    /// <summary>
    /// As <see cref="GenerateAsync(IReadOnlyList{int}, SamplingParams, IReadOnlySet{int}, CancellationToken)"/>, and
    /// calls <paramref name="onAdmitted"/> once, on the engine thread, when the request is first admitted, with how
    /// its prompt's KV was found (device prefix hit, host swap-in, computed). It must not block; if it throws, the
    /// request ends with that exception.
    /// </summary>
    public IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling, IReadOnlySet<int> stopTokenIds,
        Action<KvAdmission>? onAdmitted, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        ArgumentNullException.ThrowIfNull(sampling);
        ArgumentNullException.ThrowIfNull(stopTokenIds);
        ValidatePrompt(prompt);
        var sequence = new Sequence(Interlocked.Increment(ref _nextId), prompt, sampling, stopTokenIds) { OnAdmitted = onAdmitted };
        return Stream(sequence, cancellationToken);
    }

    /// <summary>
    /// Streams the tokens generated after <paramref name="prompt"/> until a stop token (not yielded),
    /// MaxNewTokens, or the context is full. The request joins the engine's queue when enumeration starts;
    /// cancelling (or leaving the enumeration early) ends it and frees its pages.
    /// Throws ArgumentException at once for an empty prompt, a prompt longer than the context or the KV pool,
    /// or a token id outside the vocabulary.
    /// </summary>
    public IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling, IReadOnlySet<int> stopTokenIds, CancellationToken cancellationToken = default) =>
        GenerateAsync(prompt, sampling, stopTokenIds, null, cancellationToken);

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
        while (_work.TryDequeue(out var work)) work.Fail(new ObjectDisposedException(nameof(InferenceEngine)));
        _wake.Dispose();
        _meters.Dispose();
        _host?.Pool.Dispose(); // pinned host memory goes before the device context
        _model.Dispose();
        _weights?.Dispose();
    }

    private async IAsyncEnumerable<int> Stream(Sequence sequence, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        cancellationToken.ThrowIfCancellationRequested();
        sequence.EnqueuedAt = System.Diagnostics.Stopwatch.GetTimestamp();
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
            while (_work.TryDequeue(out var work)) work.Run();
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
        while (_work.TryDequeue(out var work)) work.Fail(shutdown);
    }

    private void Step()
    {
        long start = System.Diagnostics.Stopwatch.GetTimestamp();
        foreach (var s in _scheduler.All.Where(s => s.Cancelled).ToList()) Finish(s, null);
        var exhausted = new List<Sequence>();
        var batch = _scheduler.Schedule(exhausted);
        foreach (var s in exhausted) Finish(s, null); // alone and the pool is full: it ends as if its context were full
        foreach (var s in _scheduler.FirstAdmissions)
        {
            if (s.OnAdmitted is not { } callback) continue;
            try { callback(s.Admission!.Value); }
            catch (Exception e) { s.Fault = e; } // ends the request after this step; the loop goes on
        }
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
            if (s.Fault is { } fault)
            {
                if (chunks[i].Rows == LogitsRows.Last) row++;
                Finish(s, fault);
                continue;
            }
            if (chunks[i].Rows != LogitsRows.Last) continue;
            int token = picked[row++];
            if (s.StopTokenIds.Contains(token)) { Finish(s, null); continue; }
            s.Tokens.Add(token);
            s.Generated++;
            _generated++;
            if (s.Generated == 1 && s.Admission is { } admitted) _meters.FirstToken(EngineMeters.Milliseconds(s.EnqueuedAt), admitted);
            s.Output.Writer.TryWrite(token);
            if (s.Generated >= s.Sampling.MaxNewTokens || s.Length >= ContextLength) Finish(s, null);
        }
        _meters.Step(batch.Count, EngineMeters.Milliseconds(start), _generated - _reportedGenerated, _scheduler.Preemptions - _reportedPreemptions);
        _reportedGenerated = _generated;
        _reportedPreemptions = _scheduler.Preemptions;
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
        var pool = _host?.Pool;
        var tiers = new KvTierStats(_blocks.TotalPages, _blocks.FreePages, _blocks.CachedFreePages, pool?.Count ?? 0, pool?.Capacity ?? 0, _model.PageBytes);
        long deviceHits = _scheduler.PrefixHitTokens, hostHits = _scheduler.HostHitTokens;
        long spilled = _host?.PagesSpilled ?? 0, swappedIn = _host?.PagesSwappedIn ?? 0, evictions = pool?.Evictions ?? 0;
        _meters.PrefixHits(deviceHits - _reportedDeviceHits, hostHits - _reportedHostHits);
        _meters.Moves(spilled - _reportedSpilled, swappedIn - _reportedSwappedIn, evictions - _reportedEvictions);
        _meters.SetPages(_blocks.UsedPages, _blocks.FreePages, tiers.HostPagesUsed, tiers.HostPagesCapacity - tiers.HostPagesUsed);
        lock (_metricsLock)
        {
            _metrics = m;
            _tierStats = tiers;
            _reportedDeviceHits = deviceHits;
            _reportedHostHits = hostHits;
            _reportedSpilled = spilled;
            _reportedSwappedIn = swappedIn;
            _reportedEvictions = evictions;
        }
    }

    // ---- IKvTiers: every operation runs on the engine loop between steps (inline when called on it, e.g. from an
    // admission callback). Pages are identified by the hash chain of the tokens under RopeVariant(tokens.Count), the
    // variant an admission of exactly these tokens would use (always "" unless RoPE is dynamic NTK). ----

    /// <summary>
    /// Leading tokens of <paramref name="tokens"/> held on the device, then in the host pool (full pages only). Blocks
    /// until the engine loop has run it: at most one step (<see cref="ProbeAsync"/> does not block).
    /// </summary>
    public KvResidency Probe(IReadOnlyList<int> tokens) => ProbeAsync(tokens).GetAwaiter().GetResult();

    /// <summary>
    /// <see cref="Probe"/> without blocking the caller while the loop finishes its step (a grain's scheduler thread
    /// would otherwise wait for up to a whole prefill step).
    /// </summary>
    public Task<KvResidency> ProbeAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var copy = tokens.ToArray();
        return RunOnLoop(() =>
        {
            var (device, host) = _blocks.Probe(copy, _model.RopeVariant(copy.Length));
            return new KvResidency(device * PageSize, host * PageSize);
        }, cancellationToken);
    }

    public Task<KvExport?> ExportAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var copy = tokens.ToArray();
        return RunOnLoop(() => Export(copy), cancellationToken);
    }

    public Task<int> ImportAsync(KvExport export, CancellationToken cancellationToken = default)
    {
        ValidateImport(export);
        var tokens = export.Tokens.ToArray();
        var pages = export.Pages.ToArray();
        return RunOnLoop(() => Import(tokens, pages), cancellationToken);
    }

    public Task<int> OffloadAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var copy = tokens.ToArray();
        return RunOnLoop(() => _blocks.Offload(copy, _model.RopeVariant(copy.Length)) * PageSize, cancellationToken);
    }

    /// <summary>
    /// Forgets the KV of the prefix of <paramref name="tokens"/> in every tier this engine holds (free cached device
    /// pages and host pool entries; pages a running request holds stay). Returns the tokens forgotten on the device.
    /// For a session that is deleted, and for measurements of the slower tiers.
    /// </summary>
    public Task<int> DropAsync(IReadOnlyList<int> tokens, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        var copy = tokens.ToArray();
        return RunOnLoop(() =>
        {
            var hashes = _blocks.ChainHashes(copy, _model.RopeVariant(copy.Length), copy.Length / PageSize);
            int dropped = _blocks.Drop(hashes);
            if (_host is not null)
                foreach (var h in hashes) _host.Pool.Remove(h);
            return dropped * PageSize;
        }, cancellationToken);
    }

    /// <summary>Full pages of the prefix held on the device (read in one batch) or, failing that, in the host pool.</summary>
    private KvExport? Export(int[] tokens)
    {
        var hashes = _blocks.ChainHashes(tokens, _model.RopeVariant(tokens.Length), tokens.Length / PageSize);
        var pages = new List<byte[]>();
        var devicePages = new List<int>();
        var deviceIndex = new List<int>();
        int pageBytes = checked((int)_model.PageBytes);
        foreach (var h in hashes)
        {
            int page = _blocks.Find(h);
            var bytes = new byte[pageBytes];
            if (page >= 0) { devicePages.Add(page); deviceIndex.Add(pages.Count); }
            else if (_host is not null && _host.Pool.TryGet(h, out var held)) held.CopyTo(bytes);
            else break;
            pages.Add(bytes);
        }
        if (pages.Count == 0) return null;
        if (devicePages.Count > 0) _model.ReadPages(CollectionsMarshal.AsSpan(devicePages), i => pages[deviceIndex[i]]);
        return new KvExport(PageFormat, tokens[..(pages.Count * PageSize)], pages.Select(p => (ReadOnlyMemory<byte>)p).ToArray());
    }

    /// <summary>Puts the pages not on the device already into the host pool, in order, until it has no room.</summary>
    private int Import(int[] tokens, ReadOnlyMemory<byte>[] pages)
    {
        var hashes = _blocks.ChainHashes(tokens, _model.RopeVariant(tokens.Length), pages.Length);
        var pinned = new List<UInt128>();
        int accepted = 0;
        try
        {
            for (; accepted < hashes.Length; accepted++)
            {
                var h = hashes[accepted];
                if (_blocks.Find(h) >= 0) continue; // the device holds it already
                if (_host is null || !_host.Pool.TryReserve(h, out var slot, out bool existed)) break;
                if (!existed) pages[accepted].Span.CopyTo(slot);
                _host.Pool.Pin(h); // a later page of this import must not evict an earlier one
                pinned.Add(h);
            }
        }
        finally
        {
            foreach (var h in pinned) _host!.Pool.Unpin(h);
        }
        return accepted * PageSize;
    }

    private void ValidateImport(KvExport export)
    {
        ArgumentNullException.ThrowIfNull(export);
        var f = export.Format ?? throw new ArgumentException("export.Format is null", nameof(export));
        var mine = PageFormat;
        void Same<T>(T theirs, T ours, string field)
        {
            if (!EqualityComparer<T>.Default.Equals(theirs, ours))
                throw new ArgumentException($"export.Format.{field} is '{theirs}'; this engine's KV pages have {field} '{ours}'", nameof(export));
        }
        Same(f.ModelId, mine.ModelId, nameof(KvPageFormat.ModelId));
        Same(f.RopeProfile, mine.RopeProfile, nameof(KvPageFormat.RopeProfile));
        Same(f.DType, mine.DType, nameof(KvPageFormat.DType));
        Same(f.PageSize, mine.PageSize, nameof(KvPageFormat.PageSize));
        Same(f.LayerCount, mine.LayerCount, nameof(KvPageFormat.LayerCount));
        Same(f.KvHeads, mine.KvHeads, nameof(KvPageFormat.KvHeads));
        Same(f.HeadDim, mine.HeadDim, nameof(KvPageFormat.HeadDim));
        if (export.Tokens is null) throw new ArgumentException("export.Tokens is null", nameof(export));
        if (export.Pages is null) throw new ArgumentException("export.Pages is null", nameof(export));
        if (export.Tokens.Count != (long)export.Pages.Count * PageSize)
            throw new ArgumentException($"export.Tokens has {export.Tokens.Count} tokens; {export.Pages.Count} pages of {PageSize} tokens hold {(long)export.Pages.Count * PageSize}", nameof(export));
        for (int i = 0; i < export.Tokens.Count; i++)
            if ((uint)export.Tokens[i] >= (uint)Config.VocabSize)
                throw new ArgumentException($"export.Tokens[{i}] is {export.Tokens[i]}, outside the vocabulary (size {Config.VocabSize})", nameof(export));
        for (int i = 0; i < export.Pages.Count; i++)
            if (export.Pages[i].Length != mine.PageBytes)
                throw new ArgumentException($"export.Pages[{i}] has {export.Pages[i].Length} bytes; a page of format {mine.DType} has PageBytes {mine.PageBytes}", nameof(export));
    }

    /// <summary>Runs <paramref name="work"/> on the engine loop between steps (inline when already on it).</summary>
    private Task<T> RunOnLoop<T>(Func<T> work, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        T Publishing()
        {
            var result = work();
            PublishMetrics(); // TierStats reflects the work when the caller resumes
            return result;
        }
        if (Thread.CurrentThread == _thread) return Task.FromResult(Publishing());
        if (cancellationToken.IsCancellationRequested) return Task.FromCanceled<T>(cancellationToken);
        var item = new LoopWork<T>(Publishing, cancellationToken);
        _work.Enqueue(item);
        Wake();
        if (_disposed && !_thread.IsAlive && _work.TryDequeue(out var late)) late.Fail(new ObjectDisposedException(nameof(InferenceEngine)));
        return item.Task;
    }

    private abstract class LoopWork
    {
        public abstract void Run();
        public abstract void Fail(Exception error);
    }

    private sealed class LoopWork<T>(Func<T> work, CancellationToken cancellationToken) : LoopWork
    {
        private readonly TaskCompletionSource<T> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task<T> Task => _done.Task;

        public override void Run()
        {
            if (cancellationToken.IsCancellationRequested) { _done.TrySetCanceled(cancellationToken); return; }
            try { _done.TrySetResult(work()); }
            catch (Exception e) { _done.TrySetException(e); }
        }

        public override void Fail(Exception error) => _done.TrySetException(error);
    }

    /// <summary>
    /// Backend choice: Cuda demands a usable device (throws with the reason otherwise); Auto takes CUDA when
    /// CudaDevice.TryOpen succeeds (compute capability ≥ 8.0) and the CPU otherwise, keeping the reason.
    /// </summary>
    private static IModelRunner CreateRunner(ModelConfig config, IWeightSource weights, ref EngineOptions options, int contextLength)
    {
        string? reason = null;
        if (options.Backend != Backend.Cpu)
        {
            if (Cuda.CudaModelRunner.TryOpenDevice(options.CudaDevice, out var device, out reason))
            {
                try
                {
                    if (!options.PageSizeSet) options = options with { PageSize = EngineOptions.DefaultCudaPageSize };
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
        var cpu = options;
        return new CpuModelRunner(config, weights, cpu.PageSize, layout => KvPagesFor(cpu, layout, contextLength), reason);
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

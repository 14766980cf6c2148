using System.Diagnostics;
using System.Runtime.CompilerServices;
using Actors.Abstractions;
using Actors.Engine;
using Actors.Engine.Chat;
using Actors.Grains.Placement;
using Actors.Grains.Storage;
using Microsoft.Extensions.Logging;

namespace Actors.Grains;

/// <summary>
/// One session. Every turn is persisted before it is acknowledged: the user turn before generation starts, the
/// assistant turn before the final chunk. A turn that fails or is cancelled is rolled back (and the rollback
/// persisted), so the stored history is always whole user/assistant pairs. The prompt is rebuilt from all turns
/// through the model's chat template, so a session resumes on any silo after any restart.
/// Tokenization runs on this silo's copy of the model (IModelHost); generation runs on this silo's GPU worker.
/// Placed by <see cref="VramAwarePlacement"/>: where its KV pages are, else where the GPU memory is.
/// <para>
/// KV resume order for each turn (ARCHITECTURE.md §3): the engine finds what its device and host tiers hold of the
/// prompt by the page hash chain; when those cover fewer of the session's persisted full pages than the blob snapshot
/// could give, the snapshot is downloaded and imported into the host pool first; whatever no tier holds is recomputed.
/// The tier that served the prompt goes into <see cref="GenerationStats.KvTier"/> and the <see cref="GrainMetrics"/>.
/// On deactivation (idle collection, graceful silo shutdown), and right after a turn while the host pool is nearly full
/// (SessionKvOptions.SnapshotAtHostPressure), the pages the engine still holds are stored as the session's snapshot,
/// bounded in time; failures are logged, never thrown, since the tokens are always persisted.
/// </para>
/// </summary>
[VramAwarePlacement]
public sealed partial class DocumentGrain(
    [PersistentState("document", ActorsStorage.SessionStore)] IPersistentState<DocumentState> state,
    IModelHost models,
    ILocalSiloDetails silo,
    ISessionKvTracker kv,
    SessionKvSnapshots snapshots,
    GrainMetrics metrics,
    ILogger<DocumentGrain> logger) : Grain, IDocumentGrain
{
    // Enumeration of Ask interleaves with other calls (each MoveNext is a call), so turns are serialized here.
    private readonly SemaphoreSlim _turnLock = new(1, 1);

    private string SessionId => this.GetPrimaryKeyString();

    // One device per silo: the worker of ordinal 0 fronts this silo's engine (EngineDeviceStats reports it as device 0).
    private IGpuWorkerGrain LocalWorker => GrainFactory.GetGrain<IGpuWorkerGrain>(GpuWorkerKey.For(silo.SiloAddress, 0));

    public async Task<SessionInfo> Open(OpenSession request)
    {
        ArgumentNullException.ThrowIfNull(request);
        await _turnLock.WaitAsync();
        try
        {
            var s = state.State;
            var modelRef = string.IsNullOrWhiteSpace(request.ModelRef) ? s.ModelRef : request.ModelRef;
            if (modelRef is null)
                throw new ArgumentException($"session '{SessionId}' is new: a model is required to open it", nameof(request));

            // Loads (once per silo) and checks the model before anything is stored; a bad directory fails here.
            var model = await LocalWorker.LoadModel(modelRef);

            // The caller's size estimate (it also steered placement): the device counts those pages now, so other
            // silos' placements see them before the first turn fills them.
            if (VramAwarePlacementOptions.ParseEstimate(RequestContext.Get(VramAwarePlacementOptions.EstimatedTokensKey)) is { } expected)
                kv.ExpectTokens(SessionId, (int)Math.Min(expected, model.ContextLength));

            var changed = false;
            if (!string.Equals(s.ModelRef, modelRef, StringComparison.Ordinal))
            {
                s.ModelRef = modelRef;
                s.TokenIds = []; // token ids belong to the old model's vocabulary
                s.SnapshotTokens = 0; // and the snapshot to its KV (a later load finds it foreign and deletes it)
                changed = true;
            }
            if (request.SystemPrompt is not null && !string.Equals(s.SystemPrompt, request.SystemPrompt, StringComparison.Ordinal))
            {
                s.SystemPrompt = request.SystemPrompt.Length == 0 ? null : request.SystemPrompt;
                changed = true;
            }
            if (request.Sampling is not null && request.Sampling != s.Sampling)
            {
                s.Sampling = Validate(request.Sampling);
                changed = true;
            }
            if (changed)
            {
                var now = DateTimeOffset.UtcNow;
                if (s.CreatedAt == default) s.CreatedAt = now;
                s.UpdatedAt = now;
                await state.WriteStateAsync();
                LogOpened(SessionId, modelRef, s.Turns.Count);
            }
            return Info(model.ContextLength);
        }
        finally
        {
            _turnLock.Release();
        }
    }

    public async Task<SessionInfo> GetInfo()
    {
        if (state.State.ModelRef is null) return Info(0);
        var generator = await models.GetAsync(state.State.ModelRef);
        return Info(generator.ContextLength);
    }

    public Task<IReadOnlyList<Turn>> GetTurns() => Task.FromResult<IReadOnlyList<Turn>>(state.State.Turns.ToArray());

    public async IAsyncEnumerable<TokenChunk> Ask(AskRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (string.IsNullOrWhiteSpace(request.Message))
            throw new ArgumentException($"message for session '{SessionId}' is empty", nameof(request));
        if (state.State.ModelRef is null)
            throw new InvalidOperationException($"session '{SessionId}' is not open: call Open with a model first");

        await _turnLock.WaitAsync(cancellationToken);
        var s = state.State;
        var turnsBefore = s.Turns.Count;
        var tokenIdsBefore = s.TokenIds;
        var updatedBefore = s.UpdatedAt;
        var stored = false;
        var completed = false;
        try
        {
            var started = Stopwatch.GetTimestamp();
            var modelRef = s.ModelRef!;
            var generator = await models.GetAsync(modelRef);
            var sampling = Validate(request.Sampling ?? s.Sampling);
            if (request.MaxNewTokens is { } max) sampling = sampling with { MaxNewTokens = max };
            Validate(sampling);

            var tiers = generator.KvTiers;
            var resumed = s.TokenIds.Count > 0;
            var userTurn = new Turn(Turn.UserRole, request.Message);
            var prompt = generator.EncodeChat(Messages(s, userTurn), addGenerationPrompt: true);
            if (prompt.Count >= generator.ContextLength)
                throw new ArgumentException(
                    $"prompt of session '{SessionId}' is {prompt.Count} tokens ({s.Turns.Count} earlier turns + this message) but model " +
                    $"'{generator.ModelId}' has a context of {generator.ContextLength} tokens (prompt + answer); shorten the message or start a new session",
                    nameof(request));

            // The user turn is acknowledged by the first chunk, so it is stored first.
            s.Turns.Add(userTurn);
            s.UpdatedAt = DateTimeOffset.UtcNow;
            stored = true;
            await state.WriteStateAsync();

            // Blob before recompute: only when device and host miss pages the snapshot may hold. Never fails the turn.
            var restore = tiers is not null && resumed
                ? await snapshots.RestoreAsync(SessionId, tiers, s.TokenIds, cancellationToken)
                : default;
            if (restore.Status is KvSnapshotLoadStatus.Corrupt or KvSnapshotLoadStatus.Foreign) s.SnapshotTokens = 0; // deleted by the store
            else if (restore.Imported) s.SnapshotTokens = Math.Max(s.SnapshotTokens, restore.ImportedTokens);

            var decoder = generator.CreateStreamDecoder();
            var generated = new List<int>();
            var answer = new System.Text.StringBuilder();
            TimeSpan? firstToken = null;
            PromptKvReport? admission = null;
            var request2 = new GenerateRequest(modelRef, [.. prompt], sampling);
            // Cancelled while the turn was stored or the snapshot restored: roll back without starting on the device.
            cancellationToken.ThrowIfCancellationRequested();
            using var queued = kv.BeginGeneration(SessionId);
            await foreach (var e in LocalWorker.GenerateReporting(request2, cancellationToken))
            {
                if (!e.IsToken)
                {
                    admission = e.Admission;
                    continue;
                }
                var token = e.Token;
                firstToken ??= Stopwatch.GetElapsedTime(started);
                generated.Add(token);
                var piece = decoder.Push(token);
                if (piece.Length == 0) continue;
                answer.Append(piece);
                yield return new TokenChunk(piece);
            }
            var tail = decoder.Flush();
            answer.Append(tail);

            // The assistant turn is acknowledged by the final chunk, so it is stored first.
            s.Turns.Add(new Turn(Turn.AssistantRole, answer.ToString()));
            s.TokenIds = [.. prompt, .. generated];
            s.UpdatedAt = DateTimeOffset.UtcNow;
            await state.WriteStateAsync();
            completed = true;
            // This silo's device now holds the session's KV (prompt + answer); placement reads it from the device report.
            kv.RecordTokenIds(SessionId, s.TokenIds);
            if (tiers is not null && UnderHostPressure(tiers)) SchedulePressureSnapshot();

            var reason = generated.Count >= sampling.MaxNewTokens ? FinishReason.MaxTokens
                : prompt.Count + generated.Count >= generator.ContextLength ? FinishReason.ContextFull
                : FinishReason.EndOfSequence;
            var elapsed = Stopwatch.GetElapsedTime(started);
            KvResumeTier? tier = admission is { } a && tiers is not null
                ? SessionKvSnapshots.Classify(a, restore.Imported, SessionKvSnapshots.ResumableTokens(prompt, tokenIdsBefore, tiers.PageFormat.PageSize))
                : null;
            metrics.Turn(tier, resumed, firstToken ?? elapsed, elapsed, generated.Count);
            LogAnswered(SessionId, prompt.Count, generated.Count, elapsed.TotalMilliseconds, reason, tier?.ToString() ?? "n/a",
                admission is null ? 0 : admission.DeviceHitTokens + admission.HostHitTokens);
            yield return new TokenChunk(tail, new GenerationStats(prompt.Count, generated.Count, firstToken ?? elapsed, elapsed, reason,
                tier, admission is null ? 0 : admission.DeviceHitTokens + admission.HostHitTokens));
        }
        finally
        {
            try
            {
                if (stored && !completed)
                {
                    // Failed or cancelled mid-turn: drop the user turn (and any unsaved assistant turn) again.
                    s.Turns.RemoveRange(turnsBefore, s.Turns.Count - turnsBefore);
                    s.TokenIds = tokenIdsBefore;
                    s.UpdatedAt = updatedBefore;
                    LogRolledBack(SessionId);
                    await state.WriteStateAsync();
                }
            }
            finally
            {
                _turnLock.Release();
            }
        }
    }

    public override async Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        _pressureTimer?.Dispose();
        if (snapshots.Options.SnapshotOnDeactivation) await SnapshotAsync(reason.ReasonCode.ToString(), cancellationToken);
        await base.OnDeactivateAsync(reason, cancellationToken);
    }

    private IGrainTimer? _pressureTimer;

    private bool UnderHostPressure(IKvTiers tiers)
    {
        var fraction = snapshots.Options.SnapshotAtHostPressure;
        if (!(fraction > 0 && fraction <= 1)) return false;
        var t = tiers.TierStats;
        return t.HostPagesCapacity > 0 && t.HostPagesUsed >= fraction * t.HostPagesCapacity;
    }

    /// <summary>
    /// Stores the snapshot in a grain timer tick right after this turn, so the answer's last chunk does not wait for the
    /// upload. The tick interleaves (it only waits for the turn lock), since the turn that scheduled it still holds that
    /// lock until the caller finishes enumerating.
    /// </summary>
    private void SchedulePressureSnapshot()
    {
        if (_pressureTimer is not null) return;
        _pressureTimer = this.RegisterGrainTimer(static (grain, ct) => grain.PressureSnapshotAsync(ct), this,
            new GrainTimerCreationOptions { DueTime = TimeSpan.Zero, Period = Timeout.InfiniteTimeSpan, Interleave = true, KeepAlive = false });
    }

    private async Task PressureSnapshotAsync(CancellationToken cancellationToken)
    {
        // The timer is disposed only after the work: disposing it first would cancel this very tick.
        try
        {
            await _turnLock.WaitAsync(cancellationToken);
            try
            {
                await SnapshotAsync("host pressure", cancellationToken);
            }
            finally
            {
                _turnLock.Release();
            }
        }
        catch (OperationCanceledException)
        {
            // Deactivating: OnDeactivateAsync stores the snapshot instead.
        }
        finally
        {
            _pressureTimer?.Dispose();
            _pressureTimer = null;
        }
    }

    /// <summary>
    /// Stores the KV the engine still holds for the session as its blob snapshot (when there is more than the blob has).
    /// Uses only a model this silo already loaded: a snapshot never loads one. Never throws.
    /// </summary>
    private async Task SnapshotAsync(string why, CancellationToken cancellationToken)
    {
        var s = state.State;
        if (s.ModelRef is null || s.TokenIds.Count == 0) return;
        try
        {
            if (!models.TryGetLoaded(s.ModelRef, out var generator) || generator.KvTiers is not { } tiers) return;
            var saved = await snapshots.SaveAsync(SessionId, tiers, s.TokenIds, s.SnapshotTokens, cancellationToken);
            LogSnapshot(SessionId, why, saved.Reason);
            if (!saved.Saved) return;
            s.SnapshotTokens = saved.Tokens;
            // A hint only (a shorter export must not replace this snapshot later); losing it costs at most a smaller snapshot.
            await state.WriteStateAsync(cancellationToken);
        }
        catch (Exception e)
        {
            LogSnapshotFailed(e, SessionId, why);
        }
    }

    private static List<ChatMessage> Messages(DocumentState s, Turn next)
    {
        var messages = new List<ChatMessage>(s.Turns.Count + 2);
        if (!string.IsNullOrEmpty(s.SystemPrompt)) messages.Add(new ChatMessage(Turn.SystemRole, s.SystemPrompt));
        foreach (var t in s.Turns) messages.Add(new ChatMessage(t.Role, t.Content));
        messages.Add(new ChatMessage(next.Role, next.Content));
        return messages;
    }

    private static SamplingOptions Validate(SamplingOptions o)
    {
        if (o.MaxNewTokens <= 0) throw new ArgumentException($"MaxNewTokens must be positive, got {o.MaxNewTokens}");
        if (!(o.Temperature >= 0) || float.IsInfinity(o.Temperature)) throw new ArgumentException($"Temperature must be >= 0 and finite, got {o.Temperature}");
        if (o.TopK < 0) throw new ArgumentException($"TopK must be >= 0, got {o.TopK}");
        if (!(o.TopP > 0 && o.TopP <= 1)) throw new ArgumentException($"TopP must be in (0, 1], got {o.TopP}");
        return o;
    }

    private SessionInfo Info(int contextLength)
    {
        var s = state.State;
        return new SessionInfo(SessionId, s.ModelRef is not null, s.ModelRef, s.SystemPrompt, s.Sampling, s.Turns.Count, s.TokenIds.Count, contextLength);
    }

    [LoggerMessage(1, LogLevel.Information, "Session {SessionId} opened on model {ModelRef} with {TurnCount} turns")]
    private partial void LogOpened(string sessionId, string modelRef, int turnCount);

    [LoggerMessage(2, LogLevel.Information, "Session {SessionId} answered: {PromptTokens} prompt tokens ({CachedTokens} cached, tier {KvTier}), {GeneratedTokens} generated in {ElapsedMs:F0} ms ({FinishReason})")]
    private partial void LogAnswered(string sessionId, int promptTokens, int generatedTokens, double elapsedMs, FinishReason finishReason, string kvTier, int cachedTokens);

    [LoggerMessage(4, LogLevel.Information, "Session {SessionId} ({Reason}): KV snapshot: {Outcome}")]
    private partial void LogSnapshot(string sessionId, string reason, string outcome);

    [LoggerMessage(5, LogLevel.Warning, "Session {SessionId} ({Reason}): KV snapshot failed")]
    private partial void LogSnapshotFailed(Exception e, string sessionId, string reason);

    [LoggerMessage(3, LogLevel.Warning, "Session {SessionId}: turn failed or was cancelled; rolled back")]
    private partial void LogRolledBack(string sessionId);
}

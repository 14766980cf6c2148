using System.Diagnostics;
using System.Runtime.CompilerServices;
using Actors.Abstractions;
using Actors.Engine;
using Actors.Engine.Chat;
using Actors.Grains.Placement;
using Microsoft.Extensions.Logging;

namespace Actors.Grains;

/// <summary>
/// One session. Every turn is persisted before it is acknowledged: the user turn before generation starts, the
/// assistant turn before the final chunk. A turn that fails or is cancelled is rolled back (and the rollback
/// persisted), so the stored history is always whole user/assistant pairs. The prompt is rebuilt from all turns
/// through the model's chat template, so a session resumes on any silo after any restart.
/// Tokenization runs on this silo's copy of the model (IModelHost); generation runs on this silo's GPU worker.
/// Placed by <see cref="VramAwarePlacement"/>: where its KV pages are, else where the GPU memory is.
/// </summary>
[VramAwarePlacement]
public sealed partial class DocumentGrain(
    [PersistentState("document", ActorsStorage.SessionStore)] IPersistentState<DocumentState> state,
    IModelHost models,
    ILocalSiloDetails silo,
    ISessionKvTracker kv,
    ILogger<DocumentGrain> logger) : Grain, IDocumentGrain
{
    // Enumeration of Ask interleaves with other calls (each MoveNext is a call), so turns are serialized here.
    private readonly SemaphoreSlim _turnLock = new(1, 1);

    private string SessionId => this.GetPrimaryKeyString();

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

            var decoder = generator.CreateStreamDecoder();
            var generated = new List<int>();
            var answer = new System.Text.StringBuilder();
            TimeSpan? firstToken = null;
            var request2 = new GenerateRequest(modelRef, [.. prompt], sampling);
            using var queued = kv.BeginGeneration(SessionId);
            await foreach (var token in LocalWorker.Generate(request2, cancellationToken))
            {
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
            kv.RecordTokens(SessionId, s.TokenIds.Count);

            var reason = generated.Count >= sampling.MaxNewTokens ? FinishReason.MaxTokens
                : prompt.Count + generated.Count >= generator.ContextLength ? FinishReason.ContextFull
                : FinishReason.EndOfSequence;
            var elapsed = Stopwatch.GetElapsedTime(started);
            LogAnswered(SessionId, prompt.Count, generated.Count, elapsed.TotalMilliseconds, reason);
            yield return new TokenChunk(tail, new GenerationStats(prompt.Count, generated.Count, firstToken ?? elapsed, elapsed, reason));
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

    [LoggerMessage(2, LogLevel.Information, "Session {SessionId} answered: {PromptTokens} prompt tokens, {GeneratedTokens} generated in {ElapsedMs:F0} ms ({FinishReason})")]
    private partial void LogAnswered(string sessionId, int promptTokens, int generatedTokens, double elapsedMs, FinishReason finishReason);

    [LoggerMessage(3, LogLevel.Warning, "Session {SessionId}: turn failed or was cancelled; rolled back")]
    private partial void LogRolledBack(string sessionId);
}

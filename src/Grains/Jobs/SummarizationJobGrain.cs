using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Text;
using Actors.Abstractions;
using Actors.Engine;
using Actors.Engine.Chat;
using Actors.Grains.Ingestion;
using Actors.Grains.Jobs.Planning;
using Actors.Grains.Placement;
using Actors.Grains.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;

namespace Actors.Grains.Jobs;

/// <summary>
/// One summarization job (ARCHITECTURE.md §2). Plans once (<see cref="SummaryPlanner"/>), then runs the plan's steps,
/// each as one turn of its own DocumentGrain session ("job-{job id}-{step id}"), so VRAM-aware placement spreads the
/// steps of a level over the silos; at most <see cref="SummarizationJobOptions.MaxConcurrentSteps"/> at once.
/// Every finished step is written to grain storage before it counts or anything uses it, and a checkpointed step is
/// never run again. A reminder re-activates an unfinished job (after its silo died, on another silo), and the new
/// activation continues from the checkpoints; a step whose session already holds its answer (finished but not yet
/// checkpointed when the job's silo died) takes that answer instead of generating again.
/// Reentrant: Watch, GetProgress and Cancel interleave with the running steps; every state write is serialized.
/// </summary>
[Reentrant]
public sealed partial class SummarizationJobGrain(
    [PersistentState("job", SummarizationJobGrain.StorageName)] IPersistentState<SummarizationJobState> state,
    IModelHost models,
    IBlobStore blobs,
    IOptions<SummarizationJobOptions> options,
    ILogger<SummarizationJobGrain> logger) : Grain, ISummarizationJobGrain, IRemindable
{
    /// <summary>Grain storage the silo registers for jobs.</summary>
    public const string StorageName = "jobs";

    /// <summary>The reminder that resumes an unfinished job.</summary>
    public const string ResumeReminder = "resume";

    /// <summary>Blob folder of documents submitted as text (content-addressed: "jobs/texts/sha256-{hex}.txt").</summary>
    public const string TextBlobFolder = "jobs/texts/";

    private readonly SummarizationJobOptions _options = options.Value;
    private readonly SemaphoreSlim _write = new(1, 1);
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private CancellationTokenSource? _runCts;
    private Task? _run;
    private long _mark; // Stopwatch timestamp up to which running time is in state.RunningTime
    private string _phase = "pending";
    // What progress reports: steps and tokens as of the last successful state write (a step counts once persisted).
    private int _countedSteps;
    private long _countedTokens;

    private string JobId => this.GetPrimaryKeyString();

    private bool Running => _run is { IsCompleted: false };

    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        Counted();
        return base.OnActivateAsync(cancellationToken);
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        // An unfinished job stays Running in storage; its reminder resumes it in a new activation.
        _runCts?.Cancel();
        return base.OnDeactivateAsync(reason, cancellationToken);
    }

    public async Task<JobInfo> Submit(SubmitJob request)
    {
        ArgumentNullException.ThrowIfNull(request);
        request.Validate();
        var (_, generation) = SummarizationJobs.ParseJobId(JobId);
        var expected = SummarizationJobs.JobId(request.ContentHash, request.ModelRef, request.Options, generation);
        if (!string.Equals(expected, JobId, StringComparison.Ordinal))
            throw new ArgumentException($"the request belongs to job '{expected}', not to '{JobId}' (document, model or options differ)", nameof(request));

        ISummarizationJobGrain? forward = null;
        var forwardForce = false;
        await _write.WaitAsync();
        try
        {
            var s = state.State;
            if (s.Request is not null)
            {
                if (generation == 0 && request.Force)
                {
                    // Generation 0 is the index of its (document, model, options): it hands out the next generation.
                    s.LatestGeneration++;
                    await state.WriteStateAsync();
                    LogForced(JobId, s.LatestGeneration);
                    forward = Generation(request, s.LatestGeneration);
                    forwardForce = true;
                }
                else if (generation == 0 && s.LatestGeneration > 0)
                {
                    forward = Generation(request, s.LatestGeneration);
                }
            }
            else
            {
                // Everything is checked above; from here on the job is created: the document once in the blob store
                // (content-addressed), the reminder, then the state. A reminder without state unregisters itself.
                string blob;
                var stored = request with { Text = null, Content = null, Force = false };
                if (request.Text is { } text)
                {
                    blob = TextBlobFolder + request.ContentHash.Replace(':', '-') + ".txt";
                    using var content = new MemoryStream(Encoding.UTF8.GetBytes(text), writable: false);
                    await blobs.PutIfNotExistsAsync(blob, content);
                }
                else if (request.Content is { } bytes)
                {
                    // Ingestion checks and extracts before it writes anything: a refused file leaves no blob and no job.
                    var ingestor = ServiceProvider.GetService<DocumentIngestor>()
                        ?? throw new InvalidOperationException("this silo has no document ingestion (services.AddDocumentIngestion)");
                    IngestedDocument document;
                    try { document = await ingestor.IngestAsync(bytes, request.Source ?? "document", request.MediaType); }
                    catch (DocumentRejectedException e) { throw new ArgumentException(e.Message, nameof(request)); }
                    if (document.ContentHash != request.ContentHash)
                        throw new InvalidOperationException($"ingestion stored the document under hash {document.ContentHash}, the job expected {request.ContentHash}");
                    blob = document.TextBlobName;
                    stored = stored with { Document = new DocumentRef(document.ContentHash, document.TextBlobName, document.FileName) };
                }
                else
                {
                    blob = request.Document!.TextBlob;
                    if (!await blobs.ExistsAsync(blob))
                        throw new ArgumentException($"document text blob '{blob}' (content hash {request.Document.ContentHash}) is not in the blob store", nameof(request));
                }
                await this.RegisterOrUpdateReminder(ResumeReminder, _options.ResumePeriod, _options.ResumePeriod);
                s.Request = stored;
                s.ContentHash = request.ContentHash;
                s.DocumentBlob = blob;
                s.Status = JobStatus.Pending;
                s.SubmittedAt = DateTimeOffset.UtcNow;
                await state.WriteStateAsync();
                LogSubmitted(JobId, request.ModelRef, request.Source ?? blob);
            }
        }
        finally
        {
            _write.Release();
        }

        // Called outside the lock: a later generation never calls back into generation 0.
        if (forward is not null)
            return forwardForce ? await forward.Submit(request with { Force = false }) : await forward.GetInfo();
        EnsureRunning();
        return Info();
    }

    private ISummarizationJobGrain Generation(SubmitJob request, int generation) =>
        GrainFactory.GetGrain<ISummarizationJobGrain>(SummarizationJobs.JobId(request.ContentHash, request.ModelRef, request.Options, generation));

    public Task<JobInfo> GetInfo()
    {
        EnsureRunning();
        return Task.FromResult(Info());
    }

    public Task<JobProgress> GetProgress()
    {
        EnsureRunning();
        return Task.FromResult(Progress());
    }

    public async IAsyncEnumerable<JobProgress> Watch([EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (state.State.Request is null)
            throw new InvalidOperationException($"job '{JobId}' was never submitted");
        // A watcher also revives a job whose silo died before its reminder came round.
        EnsureRunning();
        while (true)
        {
            var changed = _changed.Task;
            var progress = Progress();
            yield return progress;
            if (progress.IsFinal) yield break;
            // Each change is sent; without one, the elapsed time and ETA are refreshed twice a second.
            await Task.WhenAny(changed, Task.Delay(TimeSpan.FromMilliseconds(500), cancellationToken));
            cancellationToken.ThrowIfCancellationRequested();
        }
    }

    public Task<JobResult> GetResult()
    {
        EnsureRunning();
        var s = state.State;
        var steps = new List<StepSummary>(s.Steps.Count);
        foreach (var id in StepOrder(s))
            if (s.Steps.TryGetValue(id, out var c))
                steps.Add(new StepSummary(c.StepId, c.Summary, c.PromptTokens, c.GeneratedTokens, c.Elapsed, c.SessionId));
        var followUp = s.FinalStepId is { } f && s.Steps.TryGetValue(f, out var final) ? final.SessionId : null;
        return Task.FromResult(new JobResult(JobId, s.Status, s.Summary, steps, followUp, s.Error));
    }

    public async Task<JobInfo> Cancel()
    {
        var s = state.State;
        if (s.Request is null) throw new InvalidOperationException($"job '{JobId}' was never submitted");
        if (IsFinal(s.Status)) return Info();
        await Checkpoint(() =>
        {
            s.Status = JobStatus.Cancelled;
            s.FinishedAt = DateTimeOffset.UtcNow;
        });
        _runCts?.Cancel();
        LogCancelled(JobId, _countedSteps);
        await UnregisterResumeAsync();
        return Info();
    }

    public async Task ReceiveReminder(string reminderName, TickStatus status)
    {
        if (reminderName != ResumeReminder) return;
        if (state.State.Request is null || IsFinal(state.State.Status))
        {
            await UnregisterResumeAsync();
            return;
        }
        EnsureRunning();
    }

    private static bool IsFinal(JobStatus s) => s is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled;

    /// <summary>Starts the run in this activation unless it runs already, or the job is final or was never submitted.</summary>
    private void EnsureRunning()
    {
        var s = state.State;
        if (Running || s.Request is null || IsFinal(s.Status)) return;
        _runCts?.Dispose();
        _runCts = new CancellationTokenSource();
        _run = RunAsync(_runCts.Token);
    }

    private async Task RunAsync(CancellationToken ct)
    {
        await Task.Yield(); // the call that started the run returns first
        var s = state.State;
        _mark = Stopwatch.GetTimestamp();
        // Idle collection must not take the activation away while its steps run (nothing calls it meanwhile).
        DelayDeactivation(TimeSpan.FromDays(1));
        try
        {
            await Checkpoint(() =>
            {
                s.Runs++;
                if (s.Status == JobStatus.Pending) s.Status = JobStatus.Running;
            });
            if (s.Runs > 1) LogResumed(JobId, s.Runs, s.Steps.Count);
            var request = s.Request!;
            var document = await LoadDocumentAsync(ct);
            var generator = await models.GetAsync(request.ModelRef, ct);

            if (s.Plan is null)
            {
                Phase("planning");
                // CPU-bound (it encodes the document a few times): off the grain's scheduler.
                var planned = await Task.Run(() => SummaryPlanner.Plan(generator, document, request.Options), ct);
                await Checkpoint(() => s.Plan = planned);
                LogPlanned(JobId, planned.Kind, planned.DocumentTokens, planned.Steps.Length, planned.EstimatedTotalSteps);
            }
            var plan = s.Plan!;

            string finalId;
            if (plan.Kind == PlanKind.Direct)
            {
                Phase("direct");
                await RunLevelAsync(plan, plan.Steps, document, generator, ct);
                finalId = plan.Steps[^1].Id;
            }
            else
            {
                Phase("map");
                await RunLevelAsync(plan, plan.Steps, document, generator, ct);
                IReadOnlyList<string> inputs = [.. plan.Steps.Select(x => x.Id)];
                for (var level = 1; ; level++)
                {
                    var formed = s.Levels.Find(l => l.Level == level);
                    if (formed is null)
                    {
                        // Formed from checkpointed summaries only, and kept: a resumed job runs the same level.
                        // The planner sizes levels by generated tokens (never above the step's budget).
                        var outputs = inputs.Select(id => new StepOutput(id, Math.Min(s.Steps[id].SummaryTokens, plan.MaxSummaryTokens))).ToArray();
                        var next = SummaryPlanner.NextLevel(plan, level, outputs);
                        await Checkpoint(() => s.Levels.Add(next));
                        formed = next;
                    }
                    Phase(formed.IsFinal ? "final" : $"reduce-{level}");
                    await RunLevelAsync(plan, formed.Steps, document, generator, ct);
                    if (formed.IsFinal)
                    {
                        finalId = formed.Steps[0].Id;
                        break;
                    }
                    inputs = formed.NextInputs;
                }
            }

            var succeeded = false;
            await Checkpoint(() =>
            {
                if (s.Status != JobStatus.Running) return; // cancelled while the last step finished
                s.Summary = s.Steps[finalId].Summary;
                s.FinalStepId = finalId;
                s.Status = JobStatus.Succeeded;
                s.FinishedAt = DateTimeOffset.UtcNow;
                succeeded = true;
            });
            if (succeeded)
            {
                LogSucceeded(JobId, s.Steps.Count, s.RunningTime.TotalSeconds);
                await UnregisterResumeAsync();
            }
        }
        catch (Exception) when (ct.IsCancellationRequested)
        {
            // Cancel() recorded the cancellation; on deactivation the job stays Running for its reminder.
        }
        catch (Exception e)
        {
            if (IsFinal(s.Status)) return;
            LogFailed(e, JobId);
            await Checkpoint(() =>
            {
                s.Status = JobStatus.Failed;
                s.Error = e.Message;
                s.FinishedAt = DateTimeOffset.UtcNow;
            });
            await UnregisterResumeAsync();
        }
        finally
        {
            Notify();
        }
    }

    private async Task<string> LoadDocumentAsync(CancellationToken ct)
    {
        var blob = state.State.DocumentBlob;
        await using var download = await blobs.GetAsync(blob, ct)
            ?? throw new InvalidOperationException($"job '{JobId}': its document blob '{blob}' is gone from the blob store");
        using var reader = new StreamReader(download.Content, new UTF8Encoding(false, throwOnInvalidBytes: true));
        return await reader.ReadToEndAsync(ct);
    }

    /// <summary>
    /// Runs the steps of one level that are not checkpointed yet, at most MaxConcurrentSteps at once; the first step
    /// that fails for good stops the others and its error is thrown.
    /// </summary>
    private async Task RunLevelAsync(SummaryPlan plan, IReadOnlyList<PlanStep> steps, string document, ITextGenerator generator, CancellationToken ct)
    {
        var s = state.State;
        var pending = steps.Where(x => !s.Steps.ContainsKey(x.Id)).ToList();
        if (pending.Count == 0) return;
        using var level = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var gate = new SemaphoreSlim(Math.Max(1, _options.MaxConcurrentSteps));
        var tasks = pending.Select(async step =>
        {
            await gate.WaitAsync(level.Token);
            try
            {
                var inputs = step.Inputs.Length == 0 ? null : step.Inputs.Select(id => s.Steps[id].Summary).ToArray();
                var messages = SummaryPrompts.ForStep(plan, step, document, inputs);
                var done = await RunStepWithRetriesAsync(step, messages, generator, level.Token);
                await Checkpoint(() => s.Steps[step.Id] = done);
                LogStepDone(JobId, step.Id, done.PromptTokens, done.GeneratedTokens, done.Elapsed.TotalMilliseconds, done.SessionId);
            }
            catch
            {
                level.Cancel();
                throw;
            }
            finally
            {
                gate.Release();
            }
        }).ToList();
        try
        {
            await Task.WhenAll(tasks);
        }
        catch (Exception) when (!ct.IsCancellationRequested)
        {
            // WhenAll throws the first task's exception in list order, which may be a sibling's cancellation.
            var cause = tasks.Where(t => t.IsFaulted).Select(t => t.Exception!.InnerException!)
                .FirstOrDefault(e => e is not OperationCanceledException);
            if (cause is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(cause);
            throw;
        }
    }

    private async Task<StepCheckpoint> RunStepWithRetriesAsync(PlanStep step, IReadOnlyList<ChatMessage> messages, ITextGenerator generator, CancellationToken ct)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await RunStepAsync(step, messages, generator, ct);
            }
            catch (Exception e) when (!ct.IsCancellationRequested && e is not ArgumentException && attempt < _options.StepAttempts)
            {
                // A silo dying under the step, a timeout: the step's next session runs it again.
                // Doubling waits (capped) span the time membership takes to declare a dead silo dead.
                LogStepRetry(JobId, step.Id, attempt, e.GetType().Name, e.Message);
                var wait = _options.RetryDelay * Math.Pow(2, Math.Min(attempt - 1, 16));
                await Task.Delay(wait < SummarizationJobOptions.MaxRetryDelay ? wait : SummarizationJobOptions.MaxRetryDelay, ct);
            }
            catch (Exception e) when (!ct.IsCancellationRequested)
            {
                throw new InvalidOperationException($"job '{JobId}' step {step.Id} failed after {attempt} tries: {e.Message}", e);
            }
        }
    }

    /// <summary>Session ids of one step: the first try, then one per try whose session was left half-written.</summary>
    public static string SessionIdFor(string jobId, string stepId, int retry = 0) =>
        retry == 0 ? $"job-{jobId}-{stepId}" : $"job-{jobId}-{stepId}-r{retry}";

    private async Task<StepCheckpoint> RunStepAsync(PlanStep step, IReadOnlyList<ChatMessage> messages, ITextGenerator generator, CancellationToken ct)
    {
        // Prompts are [system: instructions, user: text]: the system message is the session's system prompt and the
        // user message its one turn, so the session's chat-template prompt is exactly the planned one.
        if (messages.Count == 0 || messages[^1].Role != Turn.UserRole || messages.Take(messages.Count - 1).Any(m => m.Role != Turn.SystemRole))
            throw new ArgumentException($"step {step.Id}: the planned prompt must be system messages then one user message");
        var system = string.Join("\n", messages.Take(messages.Count - 1).Select(m => m.Content));
        var user = messages[^1].Content;
        var promptTokens = generator.EncodeChat(messages, addGenerationPrompt: true).Count;
        var modelRef = state.State.Request!.ModelRef;
        var started = Stopwatch.GetTimestamp();

        // The step's size steers placement to the silo with room for it (and spreads a level's steps).
        RequestContext.Set(VramAwarePlacementOptions.EstimatedTokensKey, (long)promptTokens + step.MaxNewTokens);
        try
        {
            for (var retry = 0; ; retry++)
            {
                var sessionId = SessionIdFor(JobId, step.Id, retry);
                var session = GrainFactory.GetGrain<IDocumentGrain>(sessionId);
                var turns = await session.GetTurns();
                if (turns is [{ Role: Turn.UserRole } asked, { Role: Turn.AssistantRole } answered, ..] && asked.Content == user)
                {
                    // Finished (and persisted by its session) before the job could checkpoint it: take its answer.
                    LogStepReused(JobId, step.Id, sessionId);
                    return Checkpoint(step, answered.Content, promptTokens, generator.Encode(answered.Content).Count, TimeSpan.Zero, sessionId, generator);
                }
                if (turns.Count > 0) continue; // left half-written by a dead silo: the next session name is fresh

                await session.Open(new OpenSession(modelRef, system.Length == 0 ? null : system, SamplingOptions.Greedy(step.MaxNewTokens)));
                ct.ThrowIfCancellationRequested(); // the job was cancelled while the session opened: start no turn
                var text = new StringBuilder();
                GenerationStats? stats = null;
                await foreach (var chunk in session.Ask(new AskRequest(user, step.MaxNewTokens), ct))
                {
                    text.Append(chunk.Text);
                    stats ??= chunk.Stats;
                }
                var summary = text.ToString();
                return Checkpoint(step, summary, stats?.PromptTokens ?? promptTokens, stats?.GeneratedTokens ?? generator.Encode(summary).Count,
                    Stopwatch.GetElapsedTime(started), sessionId, generator);
            }
        }
        finally
        {
            RequestContext.Remove(VramAwarePlacementOptions.EstimatedTokensKey);
        }
    }

    private static StepCheckpoint Checkpoint(PlanStep step, string summary, int promptTokens, int generatedTokens, TimeSpan elapsed, string sessionId, ITextGenerator generator)
    {
        summary = FitSummary(summary, step.MaxNewTokens, generator);
        // A step whose model wrote nothing (only special tokens, or an immediate end of sequence) still feeds the next
        // level: an empty part would leave a reduce or final prompt with no text at all, which a session refuses.
        if (string.IsNullOrWhiteSpace(summary)) summary = EmptySummary;
        return new(step.Id, summary, generator.Encode(summary).Count, promptTokens, generatedTokens, elapsed, sessionId, DateTimeOffset.UtcNow);
    }

    /// <summary>What a step's summary reads when its model wrote nothing.</summary>
    public const string EmptySummary = "(nothing to summarize in this part)";

    /// <summary>
    /// The summary cut to at most <paramref name="maxTokens"/> tokens as the next step's prompt will encode it. The model
    /// generated at most that many tokens, but its text re-encodes to more when it is not what the tokenizer would
    /// produce for that text (skipped special tokens, odd byte sequences): the plan's reduce budgets count the text.
    /// </summary>
    public static string FitSummary(string summary, int maxTokens, ITextGenerator generator)
    {
        var ids = generator.Encode(summary);
        if (ids.Count <= maxTokens) return summary;
        // Decoding a prefix may itself re-encode longer (a cut inside a character): shorten by the excess until it fits.
        for (int keep = maxTokens; keep > 0;)
        {
            // A cut inside a character decodes to one U+FFFD at the end: drop it rather than carry it into the next prompt.
            var cut = generator.Decode(ids.Take(keep).ToArray());
            if (cut.EndsWith('\uFFFD')) cut = cut[..^1];
            int n = generator.Encode(cut).Count;
            if (n <= maxTokens) return cut;
            keep -= n - maxTokens;
        }
        return "";
    }

    /// <summary>Applies <paramref name="change"/> and writes the state; only then does progress count it.</summary>
    private async Task Checkpoint(Action change)
    {
        await _write.WaitAsync();
        try
        {
            var s = state.State;
            if (Running)
            {
                var now = Stopwatch.GetTimestamp();
                s.RunningTime += Stopwatch.GetElapsedTime(_mark, now);
                _mark = now;
            }
            change();
            await state.WriteStateAsync();
            Counted();
        }
        finally
        {
            _write.Release();
        }
        Notify();
    }

    private void Counted()
    {
        var s = state.State;
        _countedSteps = s.Steps.Count;
        _countedTokens = s.Steps.Values.Sum(c => (long)c.PromptTokens + c.GeneratedTokens);
    }

    private void Phase(string phase)
    {
        _phase = phase;
        Notify();
    }

    private void Notify()
    {
        var previous = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        previous.TrySetResult();
    }

    /// <summary>Step ids in run order: the plan's steps (direct, or the maps), then each formed level's.</summary>
    private static IEnumerable<string> StepOrder(SummarizationJobState s)
    {
        if (s.Plan is null) yield break;
        foreach (var step in s.Plan.Steps) yield return step.Id;
        foreach (var level in s.Levels)
            foreach (var step in level.Steps) yield return step.Id;
    }

    /// <summary>
    /// Steps of the whole job: exact once the final level is formed; before that the planned and formed steps plus the
    /// plan's estimate of the levels still to come (at least the final step).
    /// </summary>
    private static int StepsTotal(SummarizationJobState s)
    {
        if (s.Plan is not { } plan) return 0;
        var known = plan.Steps.Length + s.Levels.Sum(l => l.Steps.Length);
        if (plan.Kind == PlanKind.Direct || s.Levels.LastOrDefault()?.IsFinal == true) return known;
        return known + Math.Max(1, plan.EstimatedTotalSteps - known);
    }

    private JobInfo Info()
    {
        var s = state.State;
        var generation = SummarizationJobs.ParseJobId(JobId).Generation;
        var plan = s.Plan is null ? JobPlanKind.Unplanned : s.Plan.Kind == PlanKind.Direct ? JobPlanKind.Direct : JobPlanKind.MapReduce;
        return new JobInfo(JobId, s.Status, generation, s.Request?.ModelRef ?? "", s.Request?.Options ?? new SummaryOptions(),
            s.ContentHash, plan, s.SubmittedAt, s.Error);
    }

    private JobProgress Progress()
    {
        var s = state.State;
        var info = Info();
        var elapsed = s.RunningTime + (Running ? Stopwatch.GetElapsedTime(_mark) : TimeSpan.Zero);
        var total = Math.Max(StepsTotal(s), _countedSteps);
        var done = _countedSteps;
        var rate = elapsed > TimeSpan.Zero ? _countedTokens / elapsed.TotalSeconds : 0;
        TimeSpan? eta = IsFinal(s.Status) ? TimeSpan.Zero
            : done > 0 && total > done ? elapsed * ((double)(total - done) / done)
            : null;
        var phase = IsFinal(s.Status) ? s.Status.ToString().ToLowerInvariant() : Running ? _phase : "waiting";
        return new JobProgress(JobId, s.Status, info.Plan, done, total, _countedTokens, rate, eta, elapsed, phase, s.Error);
    }

    private async Task UnregisterResumeAsync()
    {
        try
        {
            if (await this.GetReminder(ResumeReminder) is { } reminder)
                await this.UnregisterReminder(reminder);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The job is final in storage; a leftover reminder finds it final and unregisters itself then.
            LogUnregisterFailed(e, JobId);
        }
    }

    [LoggerMessage(1, LogLevel.Information, "Job {JobId} submitted: model {ModelRef}, document {Document}")]
    private partial void LogSubmitted(string jobId, string modelRef, string document);

    [LoggerMessage(2, LogLevel.Information, "Job {JobId} planned {PlanKind}: {DocumentTokens} document tokens, {FirstSteps} first-level steps, about {EstimatedSteps} steps")]
    private partial void LogPlanned(string jobId, PlanKind planKind, int documentTokens, int firstSteps, int estimatedSteps);

    [LoggerMessage(3, LogLevel.Debug, "Job {JobId} step {StepId} checkpointed: {PromptTokens} prompt + {GeneratedTokens} generated tokens in {ElapsedMs:F0} ms on session {SessionId}")]
    private partial void LogStepDone(string jobId, string stepId, int promptTokens, int generatedTokens, double elapsedMs, string sessionId);

    [LoggerMessage(4, LogLevel.Warning, "Job {JobId} step {StepId} try {Attempt} failed ({ErrorType}: {Error}); trying again")]
    private partial void LogStepRetry(string jobId, string stepId, int attempt, string errorType, string error);

    [LoggerMessage(5, LogLevel.Information, "Job {JobId} step {StepId}: session {SessionId} already holds its answer; taken without generating")]
    private partial void LogStepReused(string jobId, string stepId, string sessionId);

    [LoggerMessage(6, LogLevel.Information, "Job {JobId} resumed (run {Run}) with {Checkpointed} steps checkpointed")]
    private partial void LogResumed(string jobId, int run, int checkpointed);

    [LoggerMessage(7, LogLevel.Information, "Job {JobId} succeeded: {Steps} steps, {RunningSeconds:F1} s running")]
    private partial void LogSucceeded(string jobId, int steps, double runningSeconds);

    [LoggerMessage(8, LogLevel.Warning, "Job {JobId} failed")]
    private partial void LogFailed(Exception exception, string jobId);

    [LoggerMessage(9, LogLevel.Information, "Job {JobId} cancelled after {Steps} checkpointed steps")]
    private partial void LogCancelled(string jobId, int steps);

    [LoggerMessage(10, LogLevel.Information, "Job {JobId}: forced resubmission started generation {Generation}")]
    private partial void LogForced(string jobId, int generation);

    [LoggerMessage(11, LogLevel.Warning, "Job {JobId}: could not unregister its resume reminder")]
    private partial void LogUnregisterFailed(Exception exception, string jobId);
}

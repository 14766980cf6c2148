using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace Actors.Abstractions;

/// <summary>Where a summarization job is in its life. Succeeded, Failed and Cancelled are final.</summary>
[GenerateSerializer]
public enum JobStatus
{
    /// <summary>Accepted and persisted; the plan is not made yet.</summary>
    Pending = 0,
    /// <summary>Steps are being run (or the job waits for its reminder to resume it on a live silo).</summary>
    Running = 1,
    Succeeded = 2,
    Failed = 3,
    Cancelled = 4,
}

/// <summary>How a job's document is summarized: in one prompt, or chunked, summarized in parallel and reduced.</summary>
[GenerateSerializer]
public enum JobPlanKind
{
    /// <summary>Not planned yet.</summary>
    Unplanned = 0,
    Direct = 1,
    MapReduce = 2,
}

/// <summary>
/// A document that was ingested and stored in the blob store: its content hash (the job's identity) and the blob that
/// holds its extracted plain text (UTF-8).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record DocumentRef(
    [property: Id(0)] string ContentHash,
    [property: Id(1)] string TextBlob,
    [property: Id(2)] string? FileName = null);

/// <summary>
/// A summarization request. Exactly one of <paramref name="Text"/> (the document's plain text),
/// <paramref name="Document"/> (a document ingested earlier) and <paramref name="Content"/> (a file's bytes: text,
/// Markdown, HTML, PDF or DOCX, ingested by the job's silo; <paramref name="MediaType"/> is a hint) is set.
/// <paramref name="ModelRef"/> is a model directory on the silos' machines. <paramref name="Force"/> starts a new job
/// (a new generation) even when an equal one exists. <paramref name="Source"/> names the document (a file name).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record SubmitJob(
    [property: Id(0)] string ModelRef,
    [property: Id(1)] SummaryOptions Options,
    [property: Id(2)] string? Text = null,
    [property: Id(3)] DocumentRef? Document = null,
    [property: Id(4)] bool Force = false,
    [property: Id(5)] string? Source = null,
    [property: Id(6)] byte[]? Content = null,
    [property: Id(7)] string? MediaType = null)
{
    /// <summary>
    /// The content hash that identifies the document: the ingested one's, SHA-256 of the file's bytes (as ingestion
    /// computes it, so a file and its ingested document are one job), or "sha256:" + SHA-256 of the text's UTF-8 bytes.
    /// </summary>
    public string ContentHash => Document?.ContentHash
        ?? (Content is { } bytes ? SummarizationJobs.HashBytes(bytes) : SummarizationJobs.HashText(Text ?? ""));

    /// <summary>Throws ArgumentException naming the field that is missing or out of range.</summary>
    public SubmitJob Validate()
    {
        if (string.IsNullOrWhiteSpace(ModelRef)) throw new ArgumentException("SubmitJob.ModelRef is empty: name a model directory");
        ArgumentNullException.ThrowIfNull(Options, "SubmitJob.Options");
        Options.Validate();
        if ((Text is null ? 0 : 1) + (Document is null ? 0 : 1) + (Content is null ? 0 : 1) != 1)
            throw new ArgumentException("SubmitJob needs exactly one of Text, Document and Content");
        if (Text is not null && string.IsNullOrWhiteSpace(Text))
            throw new ArgumentException($"document{(Source is null ? "" : $" '{Source}'")} is empty: nothing to summarize");
        if (Document is { } d && (string.IsNullOrWhiteSpace(d.ContentHash) || string.IsNullOrWhiteSpace(d.TextBlob)))
            throw new ArgumentException("SubmitJob.Document needs a ContentHash and a TextBlob");
        return this;
    }
}

/// <summary>What a job is. <see cref="Generation"/> is 0 for the first job of a (document, model, options), n after n forced resubmissions.</summary>
[GenerateSerializer, Immutable]
public sealed record JobInfo(
    [property: Id(0)] string JobId,
    [property: Id(1)] JobStatus Status,
    [property: Id(2)] int Generation,
    [property: Id(3)] string ModelRef,
    [property: Id(4)] SummaryOptions Options,
    [property: Id(5)] string ContentHash,
    [property: Id(6)] JobPlanKind Plan,
    [property: Id(7)] DateTimeOffset SubmittedAt,
    [property: Id(8)] string? Error = null);

/// <summary>
/// A job's progress. <see cref="StepsDone"/> counts checkpointed steps only (it never goes down, across silos too).
/// <see cref="StepsTotal"/> is 0 until planned, exact for the map steps, and until the final level is formed includes
/// the plan's estimate of the levels to come (the tree if every summary used its whole budget), so it may shrink
/// when a level turns out smaller. <see cref="TokensProcessed"/>: prompt + generated tokens of checkpointed steps.
/// <see cref="TokensPerSecond"/> over the job's running time (all its runs); <see cref="Eta"/> null until a step has
/// finished, then the running time per finished step times the steps left; zero once final.
/// <see cref="Phase"/>: "planning", "map", "reduce-N", "final", or the final status in lower case.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record JobProgress(
    [property: Id(0)] string JobId,
    [property: Id(1)] JobStatus Status,
    [property: Id(2)] JobPlanKind Plan,
    [property: Id(3)] int StepsDone,
    [property: Id(4)] int StepsTotal,
    [property: Id(5)] long TokensProcessed,
    [property: Id(6)] double TokensPerSecond,
    [property: Id(7)] TimeSpan? Eta,
    [property: Id(8)] TimeSpan Elapsed,
    [property: Id(9)] string Phase,
    [property: Id(10)] string? Error = null)
{
    public bool IsFinal => Status is JobStatus.Succeeded or JobStatus.Failed or JobStatus.Cancelled;
}

/// <summary>One checkpointed step: its id ("map-0007", "reduce-1-0002", "final"), its summary and numbers.</summary>
[GenerateSerializer, Immutable]
public sealed record StepSummary(
    [property: Id(0)] string StepId,
    [property: Id(1)] string Summary,
    [property: Id(2)] int PromptTokens,
    [property: Id(3)] int GeneratedTokens,
    [property: Id(4)] TimeSpan Elapsed,
    [property: Id(5)] string SessionId);

/// <summary>
/// A job's outcome so far: the final summary (null until it succeeded) and every checkpointed step in plan order.
/// <see cref="FollowUpSessionId"/>: the DocumentGrain session that produced the final summary; asking it further
/// questions reuses its cached prompt (for a direct plan, the whole document) as the prefix.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record JobResult(
    [property: Id(0)] string JobId,
    [property: Id(1)] JobStatus Status,
    [property: Id(2)] string? Summary,
    [property: Id(3)] IReadOnlyList<StepSummary> Steps,
    [property: Id(4)] string? FollowUpSessionId,
    [property: Id(5)] string? Error = null);

/// <summary>Job ids and the client's entry point.</summary>
public static class SummarizationJobs
{
    public const string IdPrefix = "sum-";
    private const string GenerationMarker = "-g";

    /// <summary>"sha256:" + lower-case hex of SHA-256 over the text's UTF-8 bytes.</summary>
    public static string HashText(string text) =>
        "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text)));

    /// <summary>Lower-case hex of SHA-256 over the bytes: the content hash ingestion stores a document under.</summary>
    public static string HashBytes(ReadOnlySpan<byte> content) => Convert.ToHexStringLower(SHA256.HashData(content));

    /// <summary>
    /// The id of generation <paramref name="generation"/> of the job for (document, model, options): equal inputs give
    /// equal ids, in every process. Generation 0 is the plain id; later ones end in "-gN".
    /// </summary>
    public static string JobId(string contentHash, string modelRef, SummaryOptions options, int generation = 0)
    {
        ArgumentException.ThrowIfNullOrEmpty(contentHash);
        ArgumentException.ThrowIfNullOrEmpty(modelRef);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfNegative(generation);
        // Every option spelled out with invariant formatting, so a record's ToString or culture never changes the id.
        var canonical = string.Join('\n',
            "v1", contentHash, modelRef,
            options.TargetWords.ToString(CultureInfo.InvariantCulture),
            ((int)options.Style).ToString(CultureInfo.InvariantCulture),
            options.Language is null ? "-" : "+" + options.Language,
            options.Focus is null ? "-" : "+" + options.Focus,
            options.ChunkTokens?.ToString(CultureInfo.InvariantCulture) ?? "-",
            options.OverlapTokens.ToString(CultureInfo.InvariantCulture));
        var id = IdPrefix + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(canonical)), 0, 16);
        return generation == 0 ? id : id + GenerationMarker + generation.ToString(CultureInfo.InvariantCulture);
    }

    /// <summary>The generation-0 id and the generation of a job id; throws ArgumentException for an id not made by <see cref="JobId"/>.</summary>
    public static (string BaseId, int Generation) ParseJobId(string jobId)
    {
        ArgumentNullException.ThrowIfNull(jobId);
        var baseLength = IdPrefix.Length + 32;
        if (!jobId.StartsWith(IdPrefix, StringComparison.Ordinal) || jobId.Length < baseLength
            || jobId.AsSpan(IdPrefix.Length, 32).ContainsAnyExcept("0123456789abcdef"))
            throw new ArgumentException($"job id '{jobId}' is not '{IdPrefix}' + 32 hex digits [+ '{GenerationMarker}N']", nameof(jobId));
        if (jobId.Length == baseLength) return (jobId, 0);
        var rest = jobId.AsSpan(baseLength);
        if (!rest.StartsWith(GenerationMarker) || !int.TryParse(rest[GenerationMarker.Length..], NumberStyles.None, CultureInfo.InvariantCulture, out var g) || g < 1)
            throw new ArgumentException($"job id '{jobId}' has a bad generation suffix '{rest}'", nameof(jobId));
        return (jobId[..baseLength], g);
    }

    /// <summary>
    /// The job's progress until it is final, like <see cref="ISummarizationJobGrain.Watch"/>, but carried across the
    /// death of the job's silo: a broken watch is opened again (which also resumes the job on a live silo) once a
    /// second, for as long as calls keep failing for at most <paramref name="retryFor"/> (default 2 minutes) in a row.
    /// After a reconnect the current progress is reported again. Bad ids and never-submitted jobs throw at once.
    /// </summary>
    public static async IAsyncEnumerable<JobProgress> FollowAsync(IGrainFactory grains, string jobId, TimeSpan? retryFor = null,
        [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(grains);
        ParseJobId(jobId);
        var job = grains.GetGrain<ISummarizationJobGrain>(jobId);
        var window = retryFor ?? TimeSpan.FromMinutes(2);
        long? failingSince = null;
        while (true)
        {
            var watch = job.Watch(cancellationToken).GetAsyncEnumerator(cancellationToken);
            try
            {
                while (true)
                {
                    JobProgress progress;
                    try
                    {
                        if (!await watch.MoveNextAsync()) yield break;
                        progress = watch.Current;
                        failingSince = null;
                    }
                    catch (Exception e) when (e is not (OperationCanceledException or ArgumentException or InvalidOperationException))
                    {
                        // The silo holding the job (or the gateway) went away: watch again, within the window.
                        failingSince ??= System.Diagnostics.Stopwatch.GetTimestamp();
                        if (System.Diagnostics.Stopwatch.GetElapsedTime(failingSince.Value) > window) throw;
                        break;
                    }
                    yield return progress;
                    if (progress.IsFinal) yield break;
                }
            }
            finally
            {
                try { await watch.DisposeAsync(); }
                catch (Exception) when (!cancellationToken.IsCancellationRequested) { /* the broken watch's silo is gone */ }
            }
            await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
        }
    }

    /// <summary>
    /// Submits through the generation-0 job of the request's (document, model, options): returns the existing job
    /// (its latest generation) unless <see cref="SubmitJob.Force"/>, which starts a new generation.
    /// </summary>
    public static Task<JobInfo> SubmitAsync(IGrainFactory grains, SubmitJob request)
    {
        ArgumentNullException.ThrowIfNull(grains);
        request.Validate();
        var id = JobId(request.ContentHash, request.ModelRef, request.Options);
        return grains.GetGrain<ISummarizationJobGrain>(id).Submit(request);
    }
}

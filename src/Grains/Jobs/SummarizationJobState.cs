using Actors.Abstractions;
using Actors.Grains.Jobs.Planning;

namespace Actors.Grains.Jobs;

/// <summary>
/// Persisted state of one summarization job (grain storage <see cref="SummarizationJobGrain.StorageName"/>). The
/// document itself is not here: it is in the blob store (<see cref="DocumentBlob"/>), written once by content hash.
/// A step is done exactly when it is in <see cref="Steps"/>; it is added there, and the state written, before the
/// job counts it or starts anything that depends on it.
/// </summary>
[GenerateSerializer]
public sealed class SummarizationJobState
{
    /// <summary>The request, with <see cref="SubmitJob.Text"/> cleared (the text is in <see cref="DocumentBlob"/>); null until submitted.</summary>
    [Id(0)] public SubmitJob? Request { get; set; }
    [Id(1)] public JobStatus Status { get; set; }
    [Id(2)] public string ContentHash { get; set; } = "";
    /// <summary>Blob holding the document's plain text (UTF-8).</summary>
    [Id(3)] public string DocumentBlob { get; set; } = "";
    /// <summary>Null until planned; planned once and kept, so a resumed job runs the same steps.</summary>
    [Id(4)] public SummaryPlan? Plan { get; set; }
    /// <summary>Reduce levels (and the final level) in order, as they were formed from the finished summaries.</summary>
    [Id(5)] public List<PlanLevel> Levels { get; set; } = [];
    /// <summary>Checkpoints: finished steps by id.</summary>
    [Id(6)] public Dictionary<string, StepCheckpoint> Steps { get; set; } = new(StringComparer.Ordinal);
    [Id(7)] public string? Summary { get; set; }
    [Id(8)] public string? FinalStepId { get; set; }
    [Id(9)] public string? Error { get; set; }
    [Id(10)] public DateTimeOffset SubmittedAt { get; set; }
    [Id(11)] public DateTimeOffset? FinishedAt { get; set; }
    /// <summary>Time the job has spent running, over all its activations (tokens/s and ETA are measured on it).</summary>
    [Id(12)] public TimeSpan RunningTime { get; set; }
    /// <summary>On a generation-0 job: the newest generation started by a forced submission (0 when none).</summary>
    [Id(13)] public int LatestGeneration { get; set; }
    /// <summary>How often the job was (re)started by an activation: 1 for a job that never moved silo.</summary>
    [Id(14)] public int Runs { get; set; }
}

/// <summary>A finished step as checkpointed. <see cref="SummaryTokens"/>: the summary's length as the model encodes it.</summary>
[GenerateSerializer, Immutable]
public sealed record StepCheckpoint(
    [property: Id(0)] string StepId,
    [property: Id(1)] string Summary,
    [property: Id(2)] int SummaryTokens,
    [property: Id(3)] int PromptTokens,
    [property: Id(4)] int GeneratedTokens,
    [property: Id(5)] TimeSpan Elapsed,
    [property: Id(6)] string SessionId,
    [property: Id(7)] DateTimeOffset FinishedAt);

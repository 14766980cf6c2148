using Actors.Abstractions;

namespace Actors.Grains.Jobs.Planning;

/// <summary>Whether the whole document goes into one prompt or through map-reduce.</summary>
[GenerateSerializer]
public enum PlanKind
{
    /// <summary>One step: the document and the instructions in one prompt.</summary>
    Direct = 0,
    /// <summary>Map steps over chunks, reduce levels over their summaries, then the final step.</summary>
    MapReduce = 1,
}

/// <summary>What one step of a plan does.</summary>
[GenerateSerializer]
public enum PlanStepKind
{
    /// <summary>Summarize the whole document with the user's options (Direct plans only).</summary>
    Direct = 0,
    /// <summary>Summarize one chunk (level 0).</summary>
    Map = 1,
    /// <summary>Merge several earlier summaries into one (levels 1, 2, ...).</summary>
    Reduce = 2,
    /// <summary>Write the final summary from the remaining summaries with the user's options.</summary>
    Final = 3,
}

/// <summary>
/// One step of a plan, the unit a job checkpoints. Ids are stable and sort in run order within a level:
/// "direct", "map-0007", "reduce-1-0002", "final".
/// <paramref name="ChunkIndex"/>: index into <see cref="SummaryPlan.Chunks"/> for Map steps, else -1.
/// <paramref name="Inputs"/>: for Reduce and Final steps the ids of earlier steps whose summaries are its input, in
/// document order; empty for Direct and Map steps.
/// <paramref name="MaxNewTokens"/>: the step's output budget (SamplingParams.MaxNewTokens).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record PlanStep(
    [property: Id(0)] string Id,
    [property: Id(1)] PlanStepKind Kind,
    [property: Id(2)] int Level,
    [property: Id(3)] int ChunkIndex,
    [property: Id(4)] string[] Inputs,
    [property: Id(5)] int MaxNewTokens)
{
    public const string DirectId = "direct";
    public const string FinalId = "final";

    public static string MapId(int chunkIndex) => $"map-{chunkIndex:D4}";

    public static string ReduceId(int level, int group) => $"reduce-{level}-{group:D4}";
}

/// <summary>A finished step's summary as the next level sees it: the step's id and its length in tokens.</summary>
[GenerateSerializer, Immutable]
public readonly record struct StepOutput(
    [property: Id(0)] string StepId,
    [property: Id(1)] int Tokens);

/// <summary>
/// One level of reduction formed by <see cref="SummaryPlanner.NextLevel"/>: either reduce steps, or the single final
/// step (<see cref="IsFinal"/>). <see cref="NextInputs"/> are the ids whose summaries form the next level's input, in
/// document order: each reduce step's id, and the id of any summary carried over unchanged because it had no
/// partner to merge with. Empty when the level is final.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record PlanLevel(
    [property: Id(0)] int Level,
    [property: Id(1)] PlanStep[] Steps,
    [property: Id(2)] string[] NextInputs)
{
    public bool IsFinal => Steps is [{ Kind: PlanStepKind.Final }];
}

/// <summary>
/// What <see cref="SummaryPlanner.Plan"/> decided for one document, model and options: data a job checkpoints.
/// <see cref="Steps"/> holds the steps known up front: the direct step, or one map step per chunk in order. Reduce and
/// final steps depend on the lengths of the finished summaries and come from <see cref="SummaryPlanner.NextLevel"/>.
/// Budgets (tokens): <see cref="ReduceInputBudget"/> and <see cref="FinalInputBudget"/> bound the summaries' tokens
/// plus <see cref="SeparatorTokens"/> between neighbours that one reduce or final prompt may hold (instructions,
/// chat template, output and a safety margin already taken off the context). Every summary the plan asks for is at
/// most <see cref="MaxSummaryTokens"/> tokens, and any two such summaries fit one reduce prompt, so each reduce level
/// at least halves the count (the tree terminates).
/// </summary>
[GenerateSerializer, Immutable]
public sealed record SummaryPlan(
    [property: Id(0)] PlanKind Kind,
    [property: Id(1)] string ModelId,
    [property: Id(2)] int ContextLength,
    [property: Id(3)] SummaryOptions Options,
    [property: Id(4)] int DocumentTokens,
    [property: Id(5)] int DirectPromptTokens,
    [property: Id(6)] int ChunkTokens,
    [property: Id(7)] int OverlapTokens,
    [property: Id(8)] DocumentChunk[] Chunks,
    [property: Id(9)] PlanStep[] Steps,
    [property: Id(10)] int MapMaxNewTokens,
    [property: Id(11)] int ReduceMaxNewTokens,
    [property: Id(12)] int FinalMaxNewTokens,
    [property: Id(13)] int ReduceInputBudget,
    [property: Id(14)] int FinalInputBudget,
    [property: Id(15)] int SeparatorTokens,
    [property: Id(16)] double TokensPerWord,
    [property: Id(17)] int EstimatedTotalSteps)
{
    /// <summary>The longest summary a map or reduce step may return (its MaxNewTokens).</summary>
    public int MaxSummaryTokens => Math.Max(MapMaxNewTokens, ReduceMaxNewTokens);

    /// <summary>The step with this id among <see cref="Steps"/>; null when it is a reduce or final step or unknown.</summary>
    public PlanStep? FindStep(string id) => Array.Find(Steps, s => s.Id == id);
}

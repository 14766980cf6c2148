namespace Actors.Abstractions;

/// <summary>Generation on one device: prompt token ids in, generated token ids out (end-of-sequence not included).</summary>
[GenerateSerializer, Immutable]
public sealed record GenerateRequest(
    [property: Id(0)] string ModelRef,
    [property: Id(1)] int[] PromptTokens,
    [property: Id(2)] SamplingOptions Sampling);

/// <summary>A model as loaded by a worker.</summary>
[GenerateSerializer, Immutable]
public sealed record ModelDescription(
    [property: Id(0)] string ModelRef,
    [property: Id(1)] string ModelId,
    [property: Id(2)] int ContextLength);

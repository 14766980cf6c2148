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

/// <summary>How the engine found a prompt's KV when it admitted the request (the Engine's KvAdmission, mirrored).</summary>
[GenerateSerializer, Immutable]
public sealed record PromptKvReport(
    [property: Id(0)] int PromptTokens,
    [property: Id(1)] int DeviceHitTokens,
    [property: Id(2)] int HostHitTokens)
{
    /// <summary>Prompt tokens prefilled on the device.</summary>
    public int ComputedTokens => PromptTokens - DeviceHitTokens - HostHitTokens;
}

/// <summary>
/// One item of <see cref="IGpuWorkerGrain.GenerateReporting"/>: a generated token, or (at most once, before the first
/// token or alone when nothing was generated) the report of how the prompt's KV was found.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record GenerationEvent(
    [property: Id(0)] int Token,
    [property: Id(1)] PromptKvReport? Admission = null)
{
    public bool IsToken => Admission is null;
}

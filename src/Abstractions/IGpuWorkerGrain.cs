namespace Actors.Abstractions;

/// <summary>
/// One device of one silo (key: "&lt;silo address&gt;/&lt;device ordinal&gt;", see GpuWorkerKey in Grains), pinned to
/// that silo. Fronts the silo's engine for that device; calls from many sessions interleave and the engine batches them.
/// </summary>
public interface IGpuWorkerGrain : IGrainWithStringKey
{
    /// <summary>Loads the model (once per silo) and describes it; a bad model directory fails here with its reason.</summary>
    Task<ModelDescription> LoadModel(string modelRef);

    /// <summary>Generates token ids after the prompt until end-of-sequence, MaxNewTokens or a full context.</summary>
    IAsyncEnumerable<int> Generate(GenerateRequest request, CancellationToken cancellationToken = default);

    /// <summary>
    /// As <see cref="Generate"/>, and first reports how the prompt's KV was found (device hit, host swap-in, prefill)
    /// when the engine has KV tiers: one event with <see cref="GenerationEvent.Admission"/> set, then one per token.
    /// </summary>
    IAsyncEnumerable<GenerationEvent> GenerateReporting(GenerateRequest request, CancellationToken cancellationToken = default);
}

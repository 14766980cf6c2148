using System.Runtime.CompilerServices;
using Actors.Abstractions;
using Orleans.Concurrency;
using Orleans.Placement;

namespace Actors.Grains;

/// <summary>
/// One device of this silo. Placed locally (callers build the key from their own silo address, so the caller's
/// silo is the owner) and refuses to activate anywhere else. Reentrant: the engine batches concurrent sessions, so
/// calls must interleave; the grain only awaits the engine's asynchronous streams and never blocks the scheduler.
/// </summary>
[PreferLocalPlacement]
[Reentrant]
public sealed class GpuWorkerGrain(IModelHost models, ILocalSiloDetails silo) : Grain, IGpuWorkerGrain
{
    public override Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var (owner, _) = GpuWorkerKey.Parse(this.GetPrimaryKeyString());
        var local = silo.SiloAddress.ToParsableString();
        if (!string.Equals(owner, local, StringComparison.Ordinal))
            throw new InvalidOperationException($"GPU worker '{this.GetPrimaryKeyString()}' belongs to silo {owner}, not to {local}");
        return base.OnActivateAsync(cancellationToken);
    }

    public async Task<ModelDescription> LoadModel(string modelRef)
    {
        var generator = await models.GetAsync(modelRef);
        return new ModelDescription(modelRef, generator.ModelId, generator.ContextLength);
    }

    public async IAsyncEnumerable<int> Generate(GenerateRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var generator = await models.GetAsync(request.ModelRef);
        // Disposing this enumerator (caller gone or cancelled) disposes the engine's, which drops the sequence.
        await foreach (var token in generator.GenerateAsync(request.PromptTokens, request.Sampling.ToEngine(), cancellationToken))
            yield return token;
    }
}

using System.Runtime.CompilerServices;
using Actors.Abstractions;
using Actors.Engine;
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

    public async IAsyncEnumerable<GenerationEvent> GenerateReporting(GenerateRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var generator = await models.GetAsync(request.ModelRef);
        // The engine calls back on its own loop when it admits the request, before the first token is produced; the
        // box carries the report across to this enumerator, which sends it ahead of the first token.
        var box = new AdmissionBox();
        var sent = false;
        await foreach (var token in generator.GenerateAsync(request.PromptTokens, request.Sampling.ToEngine(), box.Set, cancellationToken))
        {
            if (!sent && box.Report is { } report)
            {
                sent = true;
                yield return new GenerationEvent(-1, report);
            }
            yield return new GenerationEvent(token);
        }
        if (!sent && box.Report is { } last) yield return new GenerationEvent(-1, last);
    }

    private sealed class AdmissionBox
    {
        private PromptKvReport? _report;

        public PromptKvReport? Report => Volatile.Read(ref _report);

        public void Set(KvAdmission a) =>
            Volatile.Write(ref _report, new PromptKvReport(a.PromptTokens, a.DeviceHitTokens, a.HostHitTokens));
    }
}

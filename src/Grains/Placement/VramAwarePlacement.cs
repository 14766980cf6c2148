using Orleans.Placement;

namespace Actors.Grains.Placement;

/// <summary>
/// Places a session where its KV cache already lives, else where the GPU memory is: the silo holding the session's KV
/// pages when it has room, otherwise the silo with the most free KV pages that fit the session's estimated need
/// (<see cref="VramAwarePlacementOptions.EstimatedTokensKey"/> in the request context, else the configured default),
/// otherwise the least loaded silo. See <see cref="VramAwarePlacementDirector"/> for the policy and
/// <see cref="VramAwarePlacementOptions"/> for the staleness bound of the numbers it reads.
/// </summary>
[GenerateSerializer, Immutable, SuppressReferenceTracking]
public sealed class VramAwarePlacement : PlacementStrategy
{
    internal static readonly VramAwarePlacement Singleton = new();
}

/// <summary>Marks a grain class for <see cref="VramAwarePlacement"/>. The silo needs AddVramAwarePlacement().</summary>
[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class VramAwarePlacementAttribute() : PlacementAttribute(VramAwarePlacement.Singleton);

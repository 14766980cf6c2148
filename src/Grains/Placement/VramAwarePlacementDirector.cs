using Microsoft.Extensions.Logging;
using Orleans.Runtime.Placement;

namespace Actors.Grains.Placement;

/// <summary>
/// Places activations of <see cref="VramAwarePlacement"/> grains (sessions, keyed by session id) using only this silo's
/// <see cref="ClusterDeviceStats"/>; it never awaits. Among the compatible silos with a fresh report:
/// <list type="number">
/// <item>the silo whose report lists the session (its KV is there) if its free pages, less what this silo reserved
/// there for other sessions, still fit the session's estimated need;</item>
/// <item>else the silo with the most free pages (less reservations) among those whose largest device fits the need;</item>
/// <item>else (nothing fits) the least loaded: smallest queue, then most free pages, so the engine queues or spills.</item>
/// </list>
/// The need is <see cref="VramAwarePlacementOptions.EstimatedTokensKey"/> from the request context, else
/// EstimatedTokensPerSession, in pages. The chosen silo gets a reservation of those pages until a report lists the
/// session or ReservationLifetime passes, so a burst spreads out. With no fresh report at all, the choice is a hash of
/// the session and silo (spread like random placement). Ties break by that same hash: deterministic per session, spread
/// across sessions.
/// </summary>
public sealed partial class VramAwarePlacementDirector(ClusterDeviceStats stats, ILogger<VramAwarePlacementDirector> logger) : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var candidates = context.GetCompatibleSilos(target);
        if (candidates.Length == 0)
            throw new OrleansException($"no compatible silo for {target.GrainIdentity} (interface {target.InterfaceType})");
        var sessionId = target.GrainIdentity.Key.ToString() ?? "";
        var pages = stats.Options.PagesFor(EstimatedTokens(target.RequestContextData, stats.Options));
        var chosen = stats.Decide(candidates, sessionId, views => Choose(views, sessionId, pages));
        LogPlaced(sessionId, chosen, pages);
        return Task.FromResult(chosen);
    }

    /// <summary>The caller's estimate (request context) or the default; non-positive or non-numeric values fall back to the default.</summary>
    public static long EstimatedTokens(IReadOnlyDictionary<string, object>? requestContext, VramAwarePlacementOptions options)
    {
        if (requestContext is not null && requestContext.TryGetValue(VramAwarePlacementOptions.EstimatedTokensKey, out var v)
            && VramAwarePlacementOptions.ParseEstimate(v) is { } n)
            return n;
        return options.EstimatedTokensPerSession;
    }

    internal static (SiloAddress Silo, int ReservePages) Choose(IReadOnlyList<SiloView> views, string sessionId, int pages)
    {
        var known = views.Where(v => v.Known).ToList();
        if (known.Count == 0)
            return (views.MaxBy(v => Tiebreak(sessionId, v.Silo))!.Silo, pages);

        var holder = known.Where(v => v.Holds(sessionId) && v.FreePages >= 0 && v.LargestDeviceFreePages >= 0)
            .OrderByDescending(v => v.FreePages).ThenByDescending(v => Tiebreak(sessionId, v.Silo)).FirstOrDefault();
        // Its pages are already there: only growth would need room, which the engine handles; a holder over capacity is skipped.
        if (holder is not null) return (holder.Silo, 0);

        var fitting = known.Where(v => v.LargestDeviceFreePages >= pages)
            .OrderByDescending(v => v.FreePages).ThenByDescending(v => Tiebreak(sessionId, v.Silo)).FirstOrDefault();
        if (fitting is not null) return (fitting.Silo, pages);

        var least = known.OrderBy(v => v.Report!.QueueDepth).ThenByDescending(v => v.FreePages)
            .ThenByDescending(v => Tiebreak(sessionId, v.Silo)).First();
        return (least.Silo, pages);
    }

    /// <summary>Rendezvous hash of (session, silo): deterministic for a session, uniform across sessions.</summary>
    internal static ulong Tiebreak(string sessionId, SiloAddress silo)
    {
        // FNV-1a over both strings, then a 64-bit finalizer (splitmix64) so nearby keys spread.
        var h = 14695981039346656037UL;
        foreach (var c in sessionId) h = (h ^ c) * 1099511628211UL;
        h = (h ^ '|') * 1099511628211UL;
        foreach (var c in silo.ToParsableString()) h = (h ^ c) * 1099511628211UL;
        h ^= h >> 30; h *= 0xbf58476d1ce4e5b9UL;
        h ^= h >> 27; h *= 0x94d049bb133111ebUL;
        return h ^ (h >> 31);
    }

    [LoggerMessage(1, LogLevel.Debug, "Session {SessionId} placed on {Silo} (estimated {Pages} pages)")]
    private partial void LogPlaced(string sessionId, SiloAddress silo, int pages);
}

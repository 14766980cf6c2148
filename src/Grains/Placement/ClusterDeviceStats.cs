using Microsoft.Extensions.Options;

namespace Actors.Grains.Placement;

/// <summary>
/// This silo's local view of every silo's devices (filled by <see cref="DeviceStatsRefresher"/>) and of the pages
/// its own placements reserved since. Read by the director under a lock, never awaited. Reports are aged by the local
/// clock at receipt, so silos' clocks need not agree.
/// </summary>
public sealed class ClusterDeviceStats(IOptions<VramAwarePlacementOptions> options, TimeProvider time)
{
    private readonly VramAwarePlacementOptions _options = options.Value;
    private readonly Lock _sync = new();
    private readonly Dictionary<SiloAddress, Entry> _silos = [];
    // (silo, session) -> reservation; at most one per session.
    private readonly Dictionary<string, Reservation> _reservations = new(StringComparer.Ordinal);

    public VramAwarePlacementOptions Options => _options;

    public TimeProvider Time => time;

    /// <summary>Stores a report (replacing an older one of the same silo) and ends the reservations it accounts for.</summary>
    public void Update(SiloDeviceReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var now = time.GetUtcNow();
        lock (_sync)
        {
            if (_silos.TryGetValue(report.Silo, out var old) && old.Report.CapturedAt > report.CapturedAt) return; // out of order
            var sessions = report.Snapshot.Sessions.ToHashSet(StringComparer.Ordinal);
            _silos[report.Silo] = new Entry(report, now, sessions);
            // A reservation is accounted for once a report captured after it lists the session on that silo.
            List<string>? done = null;
            foreach (var (session, r) in _reservations)
                if (r.Silo.Equals(report.Silo) && sessions.Contains(session) && report.CapturedAt >= r.At)
                    (done ??= []).Add(session);
            if (done is not null) foreach (var s in done) _reservations.Remove(s);
        }
    }

    /// <summary>Forgets silos that left the cluster (and what this silo reserved on them).</summary>
    public void Retain(IReadOnlySet<SiloAddress> members)
    {
        lock (_sync)
        {
            foreach (var s in _silos.Keys.Where(s => !members.Contains(s)).ToList()) _silos.Remove(s);
            foreach (var k in _reservations.Where(kv => !members.Contains(kv.Value.Silo)).Select(kv => kv.Key).ToList()) _reservations.Remove(k);
        }
    }

    /// <summary>The latest report of a silo and when it arrived (null when none).</summary>
    public (SiloDeviceReport Report, DateTimeOffset ReceivedAt)? Latest(SiloAddress silo)
    {
        lock (_sync) return _silos.TryGetValue(silo, out var e) ? (e.Report, e.ReceivedAt) : null;
    }

    /// <summary>Pages this silo reserved on <paramref name="silo"/> that no report has accounted for yet and that have not expired.</summary>
    public int ReservedPages(SiloAddress silo)
    {
        var now = time.GetUtcNow();
        lock (_sync) return _reservations.Values.Where(r => r.Silo.Equals(silo) && r.ExpiresAt > now).Sum(r => r.Pages);
    }

    /// <summary>
    /// Runs <paramref name="decide"/> on a consistent view (fresh reports and live reservations of the given silos)
    /// and records the reservation it returns, atomically, so concurrent placements see each other.
    /// </summary>
    internal SiloAddress Decide(SiloAddress[] candidates, string sessionId, Func<IReadOnlyList<SiloView>, (SiloAddress Silo, int ReservePages)> decide)
    {
        var now = time.GetUtcNow();
        lock (_sync)
        {
            ExpireReservations(now);
            var views = new List<SiloView>(candidates.Length);
            foreach (var silo in candidates)
            {
                SiloDeviceReport? report = null;
                IReadOnlySet<string>? sessions = null;
                if (_silos.TryGetValue(silo, out var e) && now - e.ReceivedAt <= _options.StaleAfter)
                {
                    report = e.Report;
                    sessions = e.Sessions;
                }
                var reserved = 0;
                foreach (var r in _reservations.Values)
                    if (r.Silo.Equals(silo) && !string.Equals(r.Session, sessionId, StringComparison.Ordinal)) reserved += r.Pages;
                views.Add(new SiloView(silo, report, sessions, reserved));
            }
            var (chosen, pages) = decide(views);
            if (pages > 0) _reservations[sessionId] = new Reservation(chosen, sessionId, pages, now, now + _options.ReservationLifetime);
            else _reservations.Remove(sessionId);
            return chosen;
        }
    }

    private void ExpireReservations(DateTimeOffset now)
    {
        List<string>? expired = null;
        foreach (var (k, r) in _reservations) if (r.ExpiresAt <= now) (expired ??= []).Add(k);
        if (expired is not null) foreach (var k in expired) _reservations.Remove(k);
    }

    private sealed record Entry(SiloDeviceReport Report, DateTimeOffset ReceivedAt, IReadOnlySet<string> Sessions);

    private sealed record Reservation(SiloAddress Silo, string Session, int Pages, DateTimeOffset At, DateTimeOffset ExpiresAt);
}

/// <summary>A candidate silo as the director sees it: its fresh report (null when unknown or stale) and pages reserved on it by others.</summary>
internal sealed record SiloView(SiloAddress Silo, SiloDeviceReport? Report, IReadOnlySet<string>? Sessions, int ReservedPages)
{
    public bool Known => Report is not null;
    public int FreePages => (Report?.FreePages ?? 0) - ReservedPages;
    public int LargestDeviceFreePages => (Report?.LargestDeviceFreePages ?? 0) - ReservedPages;
    public bool Holds(string sessionId) => Sessions?.Contains(sessionId) == true;
}

using Microsoft.Extensions.Options;

namespace Actors.Grains.Placement;

/// <summary>
/// Settings of <see cref="VramAwarePlacement"/>.
/// <para>Staleness bound: every silo pulls every other silo's device report each <see cref="RefreshInterval"/>
/// (a call bounded by <see cref="RefreshTimeout"/>); the director ignores a report received more than
/// <see cref="StaleAfter"/> ago. So the numbers a placement decision reads describe the device at most
/// StaleAfter + RefreshTimeout ago (defaults: 5 s + 2 s); in steady state they are at most
/// RefreshInterval + one call's latency old (about 1 s). What the silo placed itself since that report is
/// covered by its reservations.</para>
/// </summary>
public sealed class VramAwarePlacementOptions
{
    /// <summary>Request-context key (an int or long) a caller sets before the first call to a session: its expected KV size in tokens.</summary>
    public const string EstimatedTokensKey = "actors.estimatedTokens";

    public static readonly TimeSpan DefaultRefreshInterval = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan DefaultRefreshTimeout = TimeSpan.FromSeconds(2);
    public static readonly TimeSpan DefaultStaleAfter = TimeSpan.FromSeconds(5);
    public static readonly TimeSpan DefaultReservationLifetime = TimeSpan.FromSeconds(30);
    public const int DefaultTokensPerPage = 16;
    public const int DefaultEstimatedTokensPerSession = 2048;
    public const int DefaultMaxReportedSessions = 4096;

    /// <summary>How often each silo pulls every silo's device report.</summary>
    public TimeSpan RefreshInterval { get; set; } = DefaultRefreshInterval;

    /// <summary>Bound on one report call; a silo that does not answer in time keeps its previous (ageing) report.</summary>
    public TimeSpan RefreshTimeout { get; set; } = DefaultRefreshTimeout;

    /// <summary>Reports received longer ago than this are ignored by the director (treated as unknown). Must exceed RefreshInterval.</summary>
    public TimeSpan StaleAfter { get; set; } = DefaultStaleAfter;

    /// <summary>
    /// How long a placement's reservation of pages counts against its silo when no report accounts for it (a report
    /// listing the session, captured after the placement, ends it earlier).
    /// </summary>
    public TimeSpan ReservationLifetime { get; set; } = DefaultReservationLifetime;

    /// <summary>Tokens per KV page (the engine's page size), used to turn an estimate in tokens into pages.</summary>
    public int TokensPerPage { get; set; } = DefaultTokensPerPage;

    /// <summary>The estimate for a session whose caller set no <see cref="EstimatedTokensKey"/>.</summary>
    public int EstimatedTokensPerSession { get; set; } = DefaultEstimatedTokensPerSession;

    /// <summary>At most this many resident session ids per silo report (most recently used first).</summary>
    public int MaxReportedSessions { get; set; } = DefaultMaxReportedSessions;

    /// <summary>A request-context estimate as a positive token count; null for anything else (absent, non-numeric, not positive).</summary>
    public static long? ParseEstimate(object? value)
    {
        long? n = value switch { int i => i, long l => l, short s => s, uint u => u, _ => null };
        return n > 0 ? n : null;
    }

    /// <summary>Pages for an estimate in tokens (at least one page).</summary>
    public int PagesFor(long tokens) => (int)Math.Clamp((tokens + TokensPerPage - 1) / TokensPerPage, 1, int.MaxValue);
}

/// <summary>Rejects <see cref="VramAwarePlacementOptions"/> that cannot work, naming the option and the value.</summary>
public sealed class VramAwarePlacementOptionsValidator(IOptions<VramAwarePlacementOptions> options) : IConfigurationValidator
{
    public void ValidateConfiguration() => Validate(options.Value);

    public static void Validate(VramAwarePlacementOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        const string n = nameof(VramAwarePlacementOptions);
        if (o.RefreshInterval <= TimeSpan.Zero)
            throw new OrleansConfigurationException($"{n}.{nameof(o.RefreshInterval)} must be positive, got {o.RefreshInterval}");
        if (o.RefreshTimeout <= TimeSpan.Zero)
            throw new OrleansConfigurationException($"{n}.{nameof(o.RefreshTimeout)} must be positive, got {o.RefreshTimeout}");
        if (o.StaleAfter <= o.RefreshInterval)
            throw new OrleansConfigurationException(
                $"{n}.{nameof(o.StaleAfter)} ({o.StaleAfter}) must exceed {nameof(o.RefreshInterval)} ({o.RefreshInterval}), or every report is stale before the next arrives");
        if (o.ReservationLifetime <= TimeSpan.Zero)
            throw new OrleansConfigurationException($"{n}.{nameof(o.ReservationLifetime)} must be positive, got {o.ReservationLifetime}");
        if (o.TokensPerPage <= 0)
            throw new OrleansConfigurationException($"{n}.{nameof(o.TokensPerPage)} must be positive, got {o.TokensPerPage}");
        if (o.EstimatedTokensPerSession <= 0)
            throw new OrleansConfigurationException($"{n}.{nameof(o.EstimatedTokensPerSession)} must be positive, got {o.EstimatedTokensPerSession}");
        if (o.MaxReportedSessions <= 0)
            throw new OrleansConfigurationException($"{n}.{nameof(o.MaxReportedSessions)} must be positive, got {o.MaxReportedSessions}");
    }
}

using Actors.Engine;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Actors.Grains.Placement;

/// <summary>Settings of <see cref="EngineDeviceStats"/>. Defaults are the constants.</summary>
public sealed class EngineDeviceStatsOptions
{
    public const int DefaultPagesBeforeLoad = 0;
    public const long DefaultPageBytesBeforeLoad = 2L * 1024 * 1024;
    public const long DefaultReservedVramBytes = 0;

    /// <summary>
    /// KV pages reported while no model is loaded yet (the pool is sized at load). 0 reports a device without pages, so
    /// placement prefers silos that already serve the model; set it to the expected pool size to spread first loads.
    /// </summary>
    public int PagesBeforeLoad { get; set; } = DefaultPagesBeforeLoad;

    /// <summary>Bytes per page reported while no model is loaded.</summary>
    public long PageBytesBeforeLoad { get; set; } = DefaultPageBytesBeforeLoad;

    /// <summary>VRAM outside the page pools (weights, activations): counted in total VRAM, never free.</summary>
    public long ReservedVramBytes { get; set; } = DefaultReservedVramBytes;
}

/// <summary>
/// This silo's device as its engines see it: the KV tiers (<see cref="IKvTiers.TierStats"/>) of every model the silo
/// has loaded, summed into one device (ordinal 0: one device per silo; the GPU worker of ordinal 0 fronts it).
/// Free pages are the pools' free pages (cached prefix pages that no request holds count as free: the engine hands them
/// out again) less the pages of sessions placed here that have not run yet. The session list is the sessions that ran
/// here, most recently used first, while their distinct full pages fit in what the tiers hold (device in use + cached +
/// host); pages are told apart by a hash chain over their tokens (as the engine does), so sessions sharing a system
/// prompt or document count its pages once. It is an estimate: the pools evict by page recency, not by session.
/// Thread-safe.
/// </summary>
public sealed class EngineDeviceStats(IModelHost models, IOptions<EngineDeviceStatsOptions> options, IOptions<VramAwarePlacementOptions> placement)
    : IDeviceStatsSource, ISessionKvTracker
{
    private readonly Lock _sync = new();
    // Session -> tokens recorded after its last turn; most recently used last.
    // Pages: the chain hash of each full page of the session's tokens (unique stand-ins when only a count was recorded).
    private readonly Dictionary<string, LinkedListNode<(string Id, ulong[] Pages)>> _sessions = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Id, ulong[] Pages)> _lru = new();
    private ulong _unique;
    // Sessions placed here with an estimate that have not recorded a turn yet: pages they will need.
    private readonly Dictionary<string, int> _expected = new(StringComparer.Ordinal);
    private int _queue;

    private int TokensPerPage => placement.Value.TokensPerPage;

    public void RecordTokens(string sessionId, int tokens)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        var pages = new ulong[tokens / TokensPerPage];
        // Without token ids nothing is known to be shared: odd stand-ins never equal a chain hash (those are even).
        lock (_sync) for (var i = 0; i < pages.Length; i++) pages[i] = (++_unique << 1) | 1;
        Record(sessionId, pages);
    }

    public void RecordTokenIds(string sessionId, IReadOnlyList<int> tokenIds)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentNullException.ThrowIfNull(tokenIds);
        var pages = new ulong[tokenIds.Count / TokensPerPage];
        Span<byte> block = stackalloc byte[8 + 4 * 64];
        var buffer = TokensPerPage <= 64 ? block[..(8 + 4 * TokensPerPage)] : new byte[8 + 4 * TokensPerPage];
        ulong h = 0;
        for (var p = 0; p < pages.Length; p++)
        {
            // h_p = XxHash64(h_{p-1}, tokens of page p): a page is the same only after the same prefix.
            System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(buffer, h);
            for (var i = 0; i < TokensPerPage; i++)
                System.Buffers.Binary.BinaryPrimitives.WriteInt32LittleEndian(buffer[(8 + 4 * i)..], tokenIds[p * TokensPerPage + i]);
            h = System.IO.Hashing.XxHash64.HashToUInt64(buffer);
            pages[p] = h & ~1UL;
        }
        Record(sessionId, pages);
    }

    private void Record(string sessionId, ulong[] pages)
    {
        lock (_sync)
        {
            _expected.Remove(sessionId);
            if (_sessions.Remove(sessionId, out var node)) _lru.Remove(node);
            _sessions[sessionId] = _lru.AddLast((sessionId, pages));
        }
    }

    public void ExpectTokens(string sessionId, int tokens)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        var pages = (int)(((long)tokens + TokensPerPage - 1) / TokensPerPage);
        lock (_sync)
        {
            if (_sessions.ContainsKey(sessionId)) return; // it ran here: its pages are in the pools already
            _expected[sessionId] = Math.Max(pages, _expected.GetValueOrDefault(sessionId));
        }
    }

    public IDisposable BeginGeneration(string sessionId)
    {
        Interlocked.Increment(ref _queue);
        return new Decrement(this);
    }

    /// <summary>The tiers of every loaded model, summed (pages may differ in size between models: the largest is reported).</summary>
    public KvTierStats Totals()
    {
        int total = 0, free = 0, cached = 0, host = 0, hostCapacity = 0;
        long pageBytes = 0;
        foreach (var g in models.Loaded)
        {
            if (g.KvTiers is not { } tiers) continue;
            var t = tiers.TierStats;
            total += t.DevicePagesTotal;
            free += t.DevicePagesFree;
            cached += t.DevicePagesCached;
            host += t.HostPagesUsed;
            hostCapacity += t.HostPagesCapacity;
            pageBytes = Math.Max(pageBytes, t.PageBytes);
        }
        return new KvTierStats(total, free, cached, host, hostCapacity, pageBytes);
    }

    public DeviceSnapshot Capture(int maxSessions)
    {
        var o = options.Value;
        var t = Totals();
        var loaded = t.PageBytes > 0;
        var total = loaded ? t.DevicePagesTotal : o.PagesBeforeLoad;
        var pageBytes = loaded ? t.PageBytes : o.PageBytesBeforeLoad;
        var freeInPool = loaded ? t.DevicePagesFree : o.PagesBeforeLoad;
        var sessions = new List<string>();
        var truncated = false;
        int free;
        lock (_sync)
        {
            free = Math.Max(0, freeInPool - _expected.Values.Sum());
            // Pages the tiers hold for sessions: in use, cached on the device, on host.
            long held = (total - freeInPool) + t.DevicePagesCached + t.HostPagesUsed;
            var counted = new HashSet<ulong>();
            foreach (var id in _expected.Keys)
            {
                if (sessions.Count == maxSessions) { truncated = true; break; }
                sessions.Add(id);
            }
            for (var node = _lru.Last; node is not null && !truncated; node = node.Previous)
            {
                // Full pages only: a partial last page is never cached under its hash, so it is not held after the turn.
                foreach (var page in node.Value.Pages) counted.Add(page);
                if (counted.Count > held) break;
                if (sessions.Count == maxSessions) { truncated = true; break; }
                sessions.Add(node.Value.Id);
            }
        }
        var stats = new DeviceStats(
            Ordinal: 0,
            TotalVramBytes: o.ReservedVramBytes + total * pageBytes,
            FreeVramBytes: free * pageBytes,
            TotalPages: total,
            FreePages: free,
            PagesOnHost: t.HostPagesUsed,
            QueueDepth: Volatile.Read(ref _queue),
            PageBytes: pageBytes);
        return new DeviceSnapshot([stats], [.. sessions], truncated);
    }

    private sealed class Decrement(EngineDeviceStats owner) : IDisposable
    {
        private int _done;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0) Interlocked.Decrement(ref owner._queue);
        }
    }
}

public static class EngineDeviceStatsExtensions
{
    /// <summary>
    /// Makes the loaded engines this silo's <see cref="IDeviceStatsSource"/> and <see cref="ISessionKvTracker"/>
    /// (replacing the simulated device), for silos that serve real models. Call before or after AddVramAwarePlacement.
    /// </summary>
    public static IServiceCollection AddEngineDeviceStats(this IServiceCollection services, Action<EngineDeviceStatsOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        var o = services.AddOptions<EngineDeviceStatsOptions>();
        if (configure is not null) o.Configure(configure);
        services.AddOptions<VramAwarePlacementOptions>();
        services.AddActorsGrains();
        services.TryAddSingleton<EngineDeviceStats>();
        services.RemoveAll<IDeviceStatsSource>();
        services.RemoveAll<ISessionKvTracker>();
        services.AddSingleton<IDeviceStatsSource>(sp => sp.GetRequiredService<EngineDeviceStats>());
        services.AddSingleton<ISessionKvTracker>(sp => sp.GetRequiredService<EngineDeviceStats>());
        return services;
    }
}

using Microsoft.Extensions.Options;

namespace Actors.Grains.Placement;

/// <summary>Size of a <see cref="SimulatedDevice"/>.</summary>
public sealed class SimulatedDeviceOptions
{
    public const int DefaultTotalPages = 4096;
    public const long DefaultPageBytes = 2L * 1024 * 1024; // 16 tokens x 32 layers x 8 kv heads x 128 dims x 2 (K,V) x 2 bytes
    public const long DefaultReservedVramBytes = 0;

    /// <summary>KV pages of the device's page pool.</summary>
    public int TotalPages { get; set; } = DefaultTotalPages;

    /// <summary>Bytes per KV page.</summary>
    public long PageBytes { get; set; } = DefaultPageBytes;

    /// <summary>VRAM outside the page pool (weights, activations): counted in total VRAM, never free.</summary>
    public long ReservedVramBytes { get; set; } = DefaultReservedVramBytes;
}

/// <summary>
/// One device's KV page pool, simulated: each session holds ceil(tokens / TokensPerPage) pages. When a session grows
/// past the free pages, the least recently used other sessions' pages move to host (as the engine preempts), so the
/// device never exceeds its pages and <see cref="DeviceStats.PagesOnHost"/> shows overcommit.
/// </summary>
public sealed class SimulatedDevice : IDeviceStatsSource, ISessionKvTracker
{
    private readonly Lock _sync = new();
    private readonly SimulatedDeviceOptions _device;
    private readonly int _tokensPerPage;
    // Session -> pages on device / on host; _lru: most recently used last.
    private readonly Dictionary<string, (int Device, int Host)> _sessions = new(StringComparer.Ordinal);
    private readonly LinkedList<string> _lru = new();
    private readonly Dictionary<string, LinkedListNode<string>> _lruNodes = new(StringComparer.Ordinal);
    private int _used;
    private int _onHost;
    private int _queue;

    public SimulatedDevice(IOptions<SimulatedDeviceOptions> device, IOptions<VramAwarePlacementOptions> placement)
    {
        _device = device.Value;
        if (_device.TotalPages < 0) throw new ArgumentException($"{nameof(SimulatedDeviceOptions)}.{nameof(SimulatedDeviceOptions.TotalPages)} must be >= 0, got {_device.TotalPages}");
        if (_device.PageBytes <= 0) throw new ArgumentException($"{nameof(SimulatedDeviceOptions)}.{nameof(SimulatedDeviceOptions.PageBytes)} must be positive, got {_device.PageBytes}");
        _tokensPerPage = placement.Value.TokensPerPage;
    }

    public int TotalPages => _device.TotalPages;

    public int UsedPages { get { lock (_sync) return _used; } }

    public int PagesOnHost { get { lock (_sync) return _onHost; } }

    /// <summary>Pages the session holds on the device (0 when unknown or moved to host).</summary>
    public int DevicePagesOf(string sessionId) { lock (_sync) return _sessions.TryGetValue(sessionId, out var p) ? p.Device : 0; }

    public void RecordTokens(string sessionId, int tokens) => Set(sessionId, tokens, growOnly: false);

    public void ExpectTokens(string sessionId, int tokens) => Set(sessionId, tokens, growOnly: true);

    private void Set(string sessionId, int tokens, bool growOnly)
    {
        ArgumentNullException.ThrowIfNull(sessionId);
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        var want = (int)(((long)tokens + _tokensPerPage - 1) / _tokensPerPage);
        lock (_sync)
        {
            _sessions.TryGetValue(sessionId, out var had);
            if (growOnly) want = Math.Max(want, had.Device + had.Host);
            // A session in use is brought back to the device whole (its host pages return).
            _onHost -= had.Host;
            _used -= had.Device;
            Touch(sessionId);
            var onDevice = Math.Min(want, _device.TotalPages);
            // Preempt least recently used others until it fits.
            for (var node = _lru.First; _device.TotalPages - _used < onDevice && node is not null; node = node.Next)
            {
                if (node.Value == sessionId) continue;
                var other = _sessions[node.Value];
                if (other.Device == 0) continue;
                _used -= other.Device;
                _onHost += other.Device;
                _sessions[node.Value] = (0, other.Host + other.Device);
            }
            var host = want - onDevice;
            _sessions[sessionId] = (onDevice, host);
            _used += onDevice;
            _onHost += host;
        }
    }

    public IDisposable BeginGeneration(string sessionId)
    {
        Interlocked.Increment(ref _queue);
        return new Decrement(this);
    }

    public DeviceSnapshot Capture(int maxSessions)
    {
        lock (_sync)
        {
            var free = _device.TotalPages - _used;
            var stats = new DeviceStats(
                Ordinal: 0,
                TotalVramBytes: _device.ReservedVramBytes + _device.TotalPages * _device.PageBytes,
                FreeVramBytes: free * _device.PageBytes,
                TotalPages: _device.TotalPages,
                FreePages: free,
                PagesOnHost: _onHost,
                QueueDepth: Volatile.Read(ref _queue),
                PageBytes: _device.PageBytes);
            var sessions = new List<string>(Math.Min(maxSessions, _sessions.Count));
            var truncated = false;
            for (var node = _lru.Last; node is not null; node = node.Previous)
            {
                if (_sessions[node.Value].Device == 0) continue;
                if (sessions.Count == maxSessions) { truncated = true; break; }
                sessions.Add(node.Value);
            }
            return new DeviceSnapshot([stats], [.. sessions], truncated);
        }
    }

    private void Touch(string sessionId)
    {
        if (_lruNodes.TryGetValue(sessionId, out var node)) _lru.Remove(node);
        else _lruNodes[sessionId] = node = new LinkedListNode<string>(sessionId);
        _lru.AddLast(node);
    }

    private sealed class Decrement(SimulatedDevice device) : IDisposable
    {
        private int _done;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _done, 1) == 0) Interlocked.Decrement(ref device._queue);
        }
    }
}

using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Actors.Engine.Runtime;

/// <summary>
/// The engine's instruments on the <see cref="MeterName"/> meter, every measurement tagged with the model id
/// ("model"): KV pages per tier (observable, tier=device|host, state=used|free), prefix-hit tokens per tier, pages
/// spilled and swapped in, host evictions, generated tokens, preemptions, per step the batch size (sequences)
/// and step time, per request the time to first token by tier (device|host|recompute), and where the runner has
/// sensors (<see cref="IModelRunner.Power"/>) its device's energy and power, tagged "device". Counters are added by the
/// engine loop; the page gauge reads the snapshot the loop last published, the device ones read the sensors.
/// </summary>
public sealed class EngineMeters : IDisposable
{
    public const string MeterName = "Actors.Engine";

    public const string KvPages = "actors.engine.kv.pages";
    public const string PrefixHitTokens = "actors.engine.kv.prefix_hit_tokens";
    public const string PagesSpilled = "actors.engine.kv.pages_spilled";
    public const string PagesSwappedIn = "actors.engine.kv.pages_swapped_in";
    public const string HostEvictions = "actors.engine.kv.host_evictions";
    public const string GeneratedTokens = "actors.engine.tokens.generated";
    public const string Preemptions = "actors.engine.preemptions";
    public const string BatchSize = "actors.engine.batch.size";
    public const string StepDuration = "actors.engine.step.duration";
    public const string TimeToFirstToken = "actors.engine.time_to_first_token";
    public const string DeviceEnergy = "actors.engine.device.energy";
    public const string DevicePowerDraw = "actors.engine.device.power";

    /// <summary>
    /// A device's sensors: the energy it has used (joules, a counter that only grows) and its power draw (watts), and
    /// the device's name for the "device" tag. They measure the whole device, so engines sharing one report the same.
    /// </summary>
    public sealed record DevicePower(string Device, Func<double> EnergyJoules, Func<double> PowerWatts);

    private readonly Meter _meter;
    private readonly KeyValuePair<string, object?> _model;
    private readonly Counter<long> _prefixHits, _spilled, _swappedIn, _evictions, _generated, _preemptions;
    private readonly Histogram<int> _batch;
    private readonly Histogram<double> _step, _ttft;
    private volatile TierPages _pages;

    private sealed record TierPages(int DeviceUsed, int DeviceFree, int HostUsed, int HostFree);

    public EngineMeters(string modelId, IMeterFactory? factory = null, DevicePower? power = null)
    {
        ArgumentNullException.ThrowIfNull(modelId);
        _model = new("model", modelId);
        _meter = factory?.Create(MeterName) ?? new Meter(MeterName);
        _pages = new TierPages(0, 0, 0, 0);
        _meter.CreateObservableGauge(KvPages, ObservePages, unit: "{page}", description: "KV pages per tier (tier=device|host) and state (used|free)");
        _prefixHits = _meter.CreateCounter<long>(PrefixHitTokens, "{token}", "prompt tokens whose KV was found at admission, per tier (device|host)");
        _spilled = _meter.CreateCounter<long>(PagesSpilled, "{page}", "KV pages copied from the device pool to the host pool");
        _swappedIn = _meter.CreateCounter<long>(PagesSwappedIn, "{page}", "KV pages copied from the host pool to the device pool");
        _evictions = _meter.CreateCounter<long>(HostEvictions, "{page}", "KV pages dropped from the host pool to make room (recomputed when needed)");
        _generated = _meter.CreateCounter<long>(GeneratedTokens, "{token}", "tokens generated");
        _preemptions = _meter.CreateCounter<long>(Preemptions, "{sequence}", "running sequences preempted for KV pages");
        _batch = _meter.CreateHistogram<int>(BatchSize, "{sequence}", "sequences in one engine step");
        _step = _meter.CreateHistogram<double>(StepDuration, "ms", "time of one engine step (schedule, page moves, forward, sampling)");
        _ttft = _meter.CreateHistogram<double>(TimeToFirstToken, "ms",
            "from a request's enqueue to its first token, by where its prompt's KV came from (tier=device|host|recompute)");
        if (power is not null)
        {
            var device = new KeyValuePair<string, object?>("device", power.Device);
            _meter.CreateObservableCounter(DeviceEnergy, () => Read(power.EnergyJoules, device), "J",
                "energy the engine's device has used since its driver loaded (the whole device); with tokens generated, joules per token");
            _meter.CreateObservableGauge(DevicePowerDraw, () => Read(power.PowerWatts, device), "W", "power draw of the engine's device");
        }
    }

    // A sensor that fails (the driver gone) reports nothing rather than failing the collection of every instrument.
    private IEnumerable<Measurement<double>> Read(Func<double> sensor, KeyValuePair<string, object?> device)
    {
        double value;
        try { value = sensor(); }
        catch (Exception) { yield break; }
        yield return new(value, _model, device);
    }

    private IEnumerable<Measurement<int>> ObservePages()
    {
        var p = _pages;
        yield return new(p.DeviceUsed, _model, new("tier", "device"), new("state", "used"));
        yield return new(p.DeviceFree, _model, new("tier", "device"), new("state", "free"));
        yield return new(p.HostUsed, _model, new("tier", "host"), new("state", "used"));
        yield return new(p.HostFree, _model, new("tier", "host"), new("state", "free"));
    }

    internal void SetPages(int deviceUsed, int deviceFree, int hostUsed, int hostFree)
    {
        var current = _pages;
        if (current.DeviceUsed != deviceUsed || current.DeviceFree != deviceFree || current.HostUsed != hostUsed || current.HostFree != hostFree)
            _pages = new TierPages(deviceUsed, deviceFree, hostUsed, hostFree);
    }

    internal void PrefixHits(long deviceTokens, long hostTokens)
    {
        if (deviceTokens > 0) _prefixHits.Add(deviceTokens, _model, new("tier", "device"));
        if (hostTokens > 0) _prefixHits.Add(hostTokens, _model, new("tier", "host"));
    }

    internal void Moves(long spilled, long swappedIn, long evictions)
    {
        if (spilled > 0) _spilled.Add(spilled, _model);
        if (swappedIn > 0) _swappedIn.Add(swappedIn, _model);
        if (evictions > 0) _evictions.Add(evictions, _model);
    }

    internal void Step(int sequences, double milliseconds, long generated, long preemptions)
    {
        _batch.Record(sequences, _model);
        _step.Record(milliseconds, _model);
        if (generated > 0) _generated.Add(generated, _model);
        if (preemptions > 0) _preemptions.Add(preemptions, _model);
    }

    /// <summary>Records a first token; the tier is host when any page was swapped in, else device on any prefix hit, else recompute.</summary>
    internal void FirstToken(double milliseconds, KvAdmission admission)
    {
        string tier = admission.HostHitTokens > 0 ? "host" : admission.DeviceHitTokens > 0 ? "device" : "recompute";
        _ttft.Record(milliseconds, _model, new("tier", tier));
    }

    internal static double Milliseconds(long startTimestamp) => Stopwatch.GetElapsedTime(startTimestamp).TotalMilliseconds;

    public void Dispose() => _meter.Dispose();
}

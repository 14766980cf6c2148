namespace Actors.Kernels.Cuda;

/// <summary>
/// GPU time per labelled stage of enqueued work, from timing events recorded between the stages: <see cref="Start"/>
/// records an event, each <see cref="Mark"/> records another and charges the interval since the previous event to its
/// label. Events are pooled and reused after <see cref="Reset"/>. The intervals are read when <see cref="Totals"/> is
/// called (it waits for the last event). An event between every launch costs a few microseconds of GPU time each, so
/// profiled steps run slightly slower than unprofiled ones; not for use inside graph capture.
/// </summary>
public sealed class StepProfile : IDisposable
{
    private readonly CudaDevice _device;
    private readonly List<CudaEvent> _events = [];
    private readonly List<(string Label, int From, int To)> _intervals = [];
    private int _used, _last = -1;

    public StepProfile(CudaDevice device) => _device = device;

    /// <summary>Records the start of a profiled stretch of work on <paramref name="stream"/>.</summary>
    public void Start(CudaStream stream) => _last = Record(stream);

    /// <summary>Charges the GPU time since the previous <see cref="Start"/> or <see cref="Mark"/> to <paramref name="label"/>.</summary>
    public void Mark(CudaStream stream, string label)
    {
        if (_last < 0) throw new InvalidOperationException($"StepProfile.Mark(\"{label}\") before Start");
        int e = Record(stream);
        _intervals.Add((label, _last, e));
        _last = e;
    }

    /// <summary>Milliseconds and interval counts per label, in first-seen order; waits for the work to finish.</summary>
    public IReadOnlyList<(string Label, double Ms, int Count)> Totals()
    {
        var order = new List<string>();
        var sums = new Dictionary<string, (double Ms, int Count)>();
        foreach (var (label, from, to) in _intervals)
        {
            double ms = CudaEvent.ElapsedMilliseconds(_events[from], _events[to]);
            if (!sums.TryGetValue(label, out var s)) order.Add(label);
            sums[label] = (s.Ms + ms, s.Count + 1);
        }
        return order.Select(l => (l, sums[l].Ms, sums[l].Count)).ToList();
    }

    /// <summary>Forgets the recorded intervals; the events are kept for reuse.</summary>
    public void Reset()
    {
        _intervals.Clear();
        _used = 0;
        _last = -1;
    }

    private int Record(CudaStream stream)
    {
        if (_used == _events.Count) _events.Add(new CudaEvent(_device));
        _events[_used].Record(stream);
        return _used++;
    }

    public void Dispose()
    {
        foreach (var e in _events) e.Dispose();
        _events.Clear();
    }
}

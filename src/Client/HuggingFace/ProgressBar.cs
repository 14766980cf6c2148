using System.Diagnostics;
using System.Globalization;

namespace Actors.Client.HuggingFace;

/// <summary>One line of download progress (bytes, percent, rate), redrawn in place at most ten times a second.</summary>
internal sealed class ProgressBar(TextWriter? output, string label, long? total, long alreadyHave)
{
    private readonly long _start = Stopwatch.GetTimestamp();
    private readonly long _startBytes = alreadyHave;
    private long _lastDraw;
    private long _done = alreadyHave;

    public void Add(long bytes)
    {
        _done += bytes;
        var now = Stopwatch.GetTimestamp();
        if (Stopwatch.GetElapsedTime(_lastDraw, now).TotalMilliseconds >= 100) { _lastDraw = now; Draw(); }
    }

    public void Reset(long done) => _done = done;

    public void Finish()
    {
        Draw();
        output?.WriteLine();
    }

    private void Draw()
    {
        if (output is null) return;
        var seconds = Math.Max(Stopwatch.GetElapsedTime(_start).TotalSeconds, 1e-3);
        var rate = (_done - _startBytes) / seconds;
        var pct = total is > 0 ? string.Create(CultureInfo.InvariantCulture, $"{100.0 * _done / total.Value,5:F1}%") : "    ?%";
        var of = total is { } t ? "/" + Size(t) : "";
        output.Write(string.Create(CultureInfo.InvariantCulture, $"\r{label}: {Size(_done)}{of} {pct} {Size((long)rate)}/s   "));
        output.Flush();
    }

    internal static string Size(long bytes) => bytes switch
    {
        >= 1L << 30 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):F2} GiB"),
        >= 1L << 20 => string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 20):F1} MiB"),
        >= 1L << 10 => string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:F1} KiB"),
        _ => string.Create(CultureInfo.InvariantCulture, $"{bytes} B"),
    };
}

using System.Diagnostics;
using System.Globalization;
using Actors.Abstractions;

namespace Actors.Client;

/// <summary>
/// A summarization job's progress as one line on stderr, redrawn in place ("\r") at most ten times a second:
/// "[#########-----------]  12/64 steps  map  1234 tok/s  ETA 0:42". The final state is always drawn, then a newline.
/// </summary>
internal sealed class JobProgressBar(TextWriter? output)
{
    public const int BarWidth = 24;

    private long _lastDraw;
    private int _lastLength;
    private JobProgress? _last;

    public void Update(JobProgress progress)
    {
        _last = progress;
        var now = Stopwatch.GetTimestamp();
        if (progress.IsFinal || _lastDraw == 0 || Stopwatch.GetElapsedTime(_lastDraw, now).TotalMilliseconds >= 100)
        {
            _lastDraw = now;
            Draw(progress);
        }
    }

    public void Finish()
    {
        if (output is null || _last is null) return;
        Draw(_last);
        output.WriteLine();
        output.Flush();
    }

    private void Draw(JobProgress p)
    {
        if (output is null) return;
        var line = Render(p);
        // Pad over the tail of a longer previous line.
        output.Write("\r" + line + new string(' ', Math.Max(0, _lastLength - line.Length)));
        output.Flush();
        _lastLength = line.Length;
    }

    /// <summary>The line for <paramref name="p"/>: bar over steps, steps done/total, phase, tokens/s and ETA (or elapsed when final).</summary>
    public static string Render(JobProgress p)
    {
        var fraction = p.StepsTotal > 0 ? Math.Clamp((double)p.StepsDone / p.StepsTotal, 0, 1) : 0;
        var filled = (int)Math.Round(fraction * BarWidth, MidpointRounding.ToZero);
        var bar = new string('#', filled) + new string('-', BarWidth - filled);
        var total = p.StepsTotal > 0 ? p.StepsTotal.ToString(CultureInfo.InvariantCulture) : "?";
        var time = p.IsFinal ? "in " + Clock(p.Elapsed) : p.Eta is { } eta ? "ETA " + Clock(eta) : "ETA ?";
        return string.Create(CultureInfo.InvariantCulture,
            $"[{bar}] {p.StepsDone,3}/{total} steps  {p.Phase}  {p.TokensPerSecond:F0} tok/s  {time}");
    }

    /// <summary>m:ss below an hour, else h:mm:ss.</summary>
    public static string Clock(TimeSpan t)
    {
        if (t < TimeSpan.Zero) t = TimeSpan.Zero;
        var seconds = (long)Math.Round(t.TotalSeconds);
        return seconds >= 3600
            ? string.Create(CultureInfo.InvariantCulture, $"{seconds / 3600}:{seconds / 60 % 60:D2}:{seconds % 60:D2}")
            : string.Create(CultureInfo.InvariantCulture, $"{seconds / 60}:{seconds % 60:D2}");
    }
}

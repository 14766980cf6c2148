using Actors.Abstractions;

namespace Actors.Client.Tests;

public sealed class JobProgressBarTests
{
    private static JobProgress P(JobStatus status, int done, int total, double rate, TimeSpan? eta, TimeSpan elapsed, string phase) =>
        new("sum-x", status, JobPlanKind.MapReduce, done, total, 0, rate, eta, elapsed, phase);

    [Fact]
    public void Renders_steps_phase_rate_and_eta()
    {
        // 16 of 64 steps: a quarter of the 24-wide bar is 6 marks.
        Assert.Equal("[######------------------]  16/64 steps  map  1235 tok/s  ETA 1:05",
            JobProgressBar.Render(P(JobStatus.Running, 16, 64, 1234.6, TimeSpan.FromSeconds(64.6), TimeSpan.FromSeconds(20), "map")));
        Assert.Equal("[------------------------]   0/? steps  planning  0 tok/s  ETA ?",
            JobProgressBar.Render(P(JobStatus.Running, 0, 0, 0, null, TimeSpan.Zero, "planning")));
        Assert.Equal("[########################]  64/64 steps  succeeded  900 tok/s  in 1:02:03",
            JobProgressBar.Render(P(JobStatus.Succeeded, 64, 64, 900, TimeSpan.Zero, new TimeSpan(1, 2, 3), "succeeded")));
    }

    [Fact]
    public void Redraws_in_place_and_ends_with_the_final_state()
    {
        var output = new StringWriter();
        var bar = new JobProgressBar(output);
        bar.Update(P(JobStatus.Running, 0, 3, 0, null, TimeSpan.Zero, "planning"));
        bar.Update(P(JobStatus.Running, 1, 3, 10, TimeSpan.FromSeconds(4), TimeSpan.FromSeconds(2), "map")); // within 100 ms: not drawn
        bar.Update(P(JobStatus.Succeeded, 3, 3, 10, TimeSpan.Zero, TimeSpan.FromSeconds(6), "succeeded")); // final: always drawn
        bar.Finish();
        var text = output.ToString();
        Assert.DoesNotContain("1/3", text);
        Assert.StartsWith("\r[------------------------]   0/3 steps  planning", text);
        Assert.EndsWith("\r[########################]   3/3 steps  succeeded  10 tok/s  in 0:06\n", text);
    }
}

using Actors.Abstractions;
using Actors.Client;
using Actors.Silo;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Actors.Grains.Tests.Jobs;

/// <summary>`actors summarize` and `actors job` against a silo host configured like the real one (in-memory reminders).</summary>
public sealed class CliJobTests : IAsyncDisposable
{
    private readonly ClusterHarness _h = new();

    public ValueTask DisposeAsync() => _h.DisposeAsync();

    private async Task<(int Code, string Out, string Err)> Cli(params string[] args)
    {
        var env = new Dictionary<string, string?>
        {
            ["ACTORS_HOME"] = _h.DataDirectory,
            ["ACTORS_GATEWAY_PORT"] = _h.GatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["ACTORS_SILO_PATH"] = Path.Combine(_h.Root, "no-silo-here"),
        };
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await ActorsCli.RunAsync(args, stdout, stderr, new StringReader(""), k => env.GetValueOrDefault(k));
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task Summarize_shows_progress_prints_the_summary_and_finds_the_job_again()
    {
        var model = _h.MakeModel("char-2048", 2048);
        var runs = 0;
        _h.Hooks.OnGenerate = _ => Interlocked.Increment(ref runs);
        using var host = await _h.StartSiloHostAsync();
        try
        {
            // A short document: the direct plan, whose user message is the document itself.
            var small = Path.Combine(_h.Root, "small.txt");
            File.WriteAllText(small, "Actors keep state.");
            var (code, output, err) = await Cli("summarize", small, "--model", model);
            Assert.True(code == 0, err);
            Assert.Equal(CharModel.ExpectedAnswer(1, "Actors keep state.") + "\n", output);
            Assert.Contains("submitted", err);
            Assert.Contains("1/1 steps  succeeded", err);
            Assert.Contains("ask more: actors chat --session job-sum-", err);
            Assert.Equal(1, runs);

            // The same file and options again: the same job, nothing run again; --force runs a new generation.
            (code, output, err) = await Cli("summarize", small, "--model", model);
            Assert.True(code == 0, err);
            Assert.Equal(CharModel.ExpectedAnswer(1, "Actors keep state.") + "\n", output);
            Assert.Contains("exists (succeeded)", err);
            Assert.Equal(1, runs);
            (code, _, err) = await Cli("summarize", small, "--model", model, "--force");
            Assert.True(code == 0, err);
            Assert.Contains("-g1 submitted", err);
            Assert.Equal(2, runs);

            // A long one: map-reduce; the printed summary is the job's final summary.
            var doc = JobTestData.Document(12_000, "cli");
            var big = Path.Combine(_h.Root, "big.txt");
            File.WriteAllText(big, doc);
            (code, output, err) = await Cli("summarize", big, "--model", model, "--words", "60", "--no-progress");
            Assert.True(code == 0, err);
            Assert.DoesNotContain("steps  ", err); // no bar
            // The CLI sends the file's bytes; the job is keyed by their SHA-256 and runs on the ingested text.
            var hash = SummarizationJobs.HashBytes(File.ReadAllBytes(big));
            var jobId = SummarizationJobs.JobId(hash, model, new SummaryOptions(TargetWords: 60));
            var grains = host.Services.GetRequiredService<IGrainFactory>();
            var result = await grains.GetGrain<ISummarizationJobGrain>(jobId).GetResult();
            var blobs = host.Services.GetRequiredService<Actors.Grains.Storage.IBlobStore>();
            string ingested;
            await using (var text = await blobs.GetAsync($"documents/{hash}.txt", TestContext.Current.CancellationToken))
                ingested = await new StreamReader(text!.Content).ReadToEndAsync(TestContext.Current.CancellationToken);
            Assert.Equal(doc.TrimEnd(), ingested.TrimEnd());
            JobTestData.AssertFollowsPlan(model, ingested, new SummaryOptions(TargetWords: 60), result);
            Assert.Contains(result.Steps, s => s.StepId == "map-0001");
            Assert.Equal(result.Summary + "\n", output);

            (code, output, err) = await Cli("job", "status", jobId);
            Assert.True(code == 0, err);
            Assert.Matches(@"^\[#+\]\s+\d+/\d+ steps  succeeded", output);
            (code, output, err) = await Cli("job", "cancel", jobId);
            Assert.True(code == 0, err);
            Assert.Equal($"job {jobId}: succeeded\n", output); // a final job stays as it is

            // Bad input: one line each, nothing submitted.
            var before = runs;
            (code, _, err) = await Cli("summarize", small, "--model", model, "--style", "haiku");
            Assert.Equal(2, code);
            Assert.Contains("--style must be abstract or bullets", err);
            (code, _, err) = await Cli("summarize", small, "--model", model, "--words", "0");
            Assert.Equal(2, code);
            Assert.Contains("TargetWords", err);
            (code, _, err) = await Cli("job", "status", "not-a-job");
            Assert.Equal(2, code);
            Assert.Contains("'not-a-job'", err);
            // A file ingestion refuses (binary): one line naming it, no job.
            var binary = Path.Combine(_h.Root, "blob.bin");
            File.WriteAllBytes(binary, [0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 3, 0, 0, 0, 0, 0xff, 0xfe, 0, 0]);
            (code, _, err) = await Cli("summarize", binary, "--model", model);
            Assert.Equal(2, code);
            Assert.Contains("blob.bin", err);
            Assert.Contains("rejected", err);
            Assert.Single(err.Trim().Split('\n'));
            Assert.Equal(before, runs);
        }
        finally
        {
            await host.StopAsync(TestContext.Current.CancellationToken);
        }
    }
}

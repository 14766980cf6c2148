using Actors.Abstractions;
using Actors.Grains.Jobs;
using Actors.Silo;
using Actors.Silo.Storage;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Configuration;

namespace Actors.Grains.Tests.Jobs;

/// <summary>The one-machine default: a job whose only silo restarts resumes by itself (the reminder table is a file).</summary>
public sealed class SiloRestartJobTests : IAsyncDisposable
{
    private readonly ClusterHarness _h = new();

    public ValueTask DisposeAsync() => _h.DisposeAsync();

    // Reminders fire within seconds, so the restarted silo resumes the job while the test waits.
    private Task<IHost> StartSiloHost() => _h.StartSiloHostAsync(configure: silo =>
    {
        silo.Services.Configure<ReminderOptions>(o => o.MinimumReminderPeriod = TimeSpan.FromSeconds(1));
        silo.Services.Configure<SummarizationJobOptions>(o => o.ResumePeriod = TimeSpan.FromSeconds(1));
    });

    private SummarizationJobState? Stored(IGrainFactory grains, string jobId)
    {
        var storage = new FileGrainStorage("check", new FileGrainStorageOptions { RootDirectory = Path.Combine(_h.DataDirectory, "grains") }, NullLogger<FileGrainStorage>.Instance);
        var state = new GrainState<SummarizationJobState>();
        storage.ReadStateAsync("job", grains.GetGrain<ISummarizationJobGrain>(jobId).GetGrainId(), state).GetAwaiter().GetResult();
        return state.RecordExists ? state.State : null;
    }

    [Fact]
    public async Task A_job_resumes_by_itself_after_its_only_silo_restarts()
    {
        var model = _h.MakeModel("char-2048", 2048);
        _h.Hooks.TokenDelay = TimeSpan.FromMilliseconds(3);
        var doc = JobTestData.Document(10_000, "restart-one");
        string jobId;
        var host = await StartSiloHost();
        try
        {
            var grains = host.Services.GetRequiredService<IGrainFactory>();
            jobId = (await SummarizationJobs.SubmitAsync(grains, new SubmitJob(model, new SummaryOptions(), Text: doc))).JobId;
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while ((await grains.GetGrain<ISummarizationJobGrain>(jobId).GetProgress()).StepsDone < 2)
            {
                Assert.True(DateTime.UtcNow < deadline, "2 steps were not checkpointed in 60 s");
                await Task.Delay(20, TestContext.Current.CancellationToken);
            }
        }
        finally
        {
            await host.StopAsync(TestContext.Current.CancellationToken);
            host.Dispose();
        }
        Assert.True(File.Exists(Path.Combine(_h.DataDirectory, "reminders.json")));

        host = await StartSiloHost();
        try
        {
            var grains = host.Services.GetRequiredService<IGrainFactory>();
            Assert.Equal(JobStatus.Running, Stored(grains, jobId)!.Status);
            // Nothing calls the job: the reminder read back from the file resumes it.
            var deadline = DateTime.UtcNow.AddSeconds(90);
            while (Stored(grains, jobId)!.Status is JobStatus.Running or JobStatus.Pending)
            {
                Assert.True(DateTime.UtcNow < deadline, "the job did not finish within 90 s of the restart");
                await Task.Delay(100, TestContext.Current.CancellationToken);
            }
            var stored = Stored(grains, jobId)!;
            Assert.True(stored.Status == JobStatus.Succeeded, stored.Error);
            Assert.True(stored.Runs >= 2);
            JobTestData.AssertFollowsPlan(model, doc, new SummaryOptions(), await grains.GetGrain<ISummarizationJobGrain>(jobId).GetResult());
        }
        finally
        {
            await host.StopAsync(TestContext.Current.CancellationToken);
            host.Dispose();
        }
    }
}

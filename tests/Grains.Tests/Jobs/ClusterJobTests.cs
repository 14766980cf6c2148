using Actors.Abstractions;

namespace Actors.Grains.Tests.Jobs;

/// <summary>Jobs over long documents on 3-silo clusters: spreading, and surviving the death of a silo.</summary>
public sealed class ClusterJobTests
{
    private static async Task WaitUntil(Func<Task<bool>> condition, TimeSpan timeout, string what)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (!await condition())
        {
            if (DateTime.UtcNow > deadline) Assert.Fail($"timed out after {timeout.TotalSeconds} s waiting for {what}");
            await Task.Delay(50, TestContext.Current.CancellationToken);
        }
    }

    [Fact]
    public async Task A_200K_token_document_is_summarized_by_map_reduce_with_chunks_on_every_silo()
    {
        await using var c = await JobCluster.StartAsync(3, contextLength: 4096);
        var doc = JobTestData.Document(200_000, "long");
        var options = new SummaryOptions();

        var info = await c.SubmitAsync(doc, options);
        var progress = await c.WatchAsync(info.JobId, TimeSpan.FromSeconds(120));
        var last = progress[^1];
        Assert.True(last.Status == JobStatus.Succeeded, last.Error);
        Assert.Equal(JobPlanKind.MapReduce, last.Plan);

        var result = await c.Job(info.JobId).GetResult();
        var users = JobTestData.AssertFollowsPlan(c.Model, doc, options, result);
        var maps = result.Steps.Where(s => s.StepId.StartsWith("map-", StringComparison.Ordinal)).ToList();
        Assert.True(maps.Sum(s => s.PromptTokens) >= 200_000, $"map prompts hold {maps.Sum(s => s.PromptTokens)} tokens");
        Assert.Contains(result.Steps, s => s.StepId.StartsWith("reduce-1-", StringComparison.Ordinal));

        // Each step ran exactly once, and the maps ran on every silo.
        foreach (var (id, user) in users) Assert.True(c.Runs(user) == 1, $"step {id} ran {c.Runs(user)} times");
        var silos = maps.Select(m => c.Executions.Single(e => e.UserMessage == users[m.StepId]).Silo).ToList();
        Assert.Equal(3, silos.Distinct().Count());

        // Progress: steps only ever go up, totals end exact, and rates and an ETA were reported on the way.
        Assert.All(progress.Zip(progress.Skip(1)), p => Assert.True(p.Second.StepsDone >= p.First.StepsDone));
        Assert.Equal(result.Steps.Count, last.StepsDone);
        Assert.Equal(last.StepsDone, last.StepsTotal);
        Assert.Equal(result.Steps.Sum(s => (long)s.PromptTokens + s.GeneratedTokens), last.TokensProcessed);
        Assert.True(last.TokensPerSecond > 0);
        Assert.Contains(progress, p => p.Status == JobStatus.Running && p.StepsDone > 0 && p.StepsDone < last.StepsDone && p.Eta > TimeSpan.Zero);
    }

    [Fact]
    public async Task A_job_whose_silo_dies_is_resumed_by_its_reminder_and_reruns_no_checkpointed_step()
    {
        await using var c = await JobCluster.StartAsync(3, contextLength: 4096, o => o.MaxConcurrentSteps = 3);
        c.Hooks.TokenDelay = TimeSpan.FromMilliseconds(2); // steps take a while, so the kill lands mid-job
        var doc = JobTestData.Document(40_000, "kill");
        var options = new SummaryOptions(ChunkTokens: 2048);

        var info = await c.SubmitAsync(doc, options);
        var job = c.Job(info.JobId);
        await WaitUntil(async () => (await job.GetProgress()).StepsDone >= 4, TimeSpan.FromSeconds(60), "4 checkpointed steps");
        var before = await job.GetResult(); // checkpointed before the kill (a subset of what is checkpointed at the kill)
        var host = c.HostOf(job);
        Assert.True(host >= 0, "the job has an activation");
        Assert.Equal(1, c.StoredJob(info.JobId)!.Runs);

        await c.Cluster.KillSiloAsync(c.Cluster.Silos[host], TestContext.Current.CancellationToken);

        // Nothing calls the job now: only its reminder can bring it back, on a live silo.
        await WaitUntil(() => Task.FromResult(c.StoredJob(info.JobId)?.Status is JobStatus.Succeeded or JobStatus.Failed),
            TimeSpan.FromSeconds(120), "the job to finish after the kill");
        var stored = c.StoredJob(info.JobId)!;
        Assert.True(stored.Status == JobStatus.Succeeded, stored.Error);
        Assert.True(stored.Runs >= 2, $"the job ran {stored.Runs} times; it should have been resumed");

        var result = await job.GetResult();
        var users = JobTestData.AssertFollowsPlan(c.Model, doc, options, result);
        Assert.NotEmpty(before.Steps);
        foreach (var step in before.Steps)
        {
            var after = result.Steps.Single(s => s.StepId == step.StepId);
            // The checkpoint itself is kept (a step taken again from its session's stored answer would record no time).
            Assert.Equal((step.Summary, step.Elapsed, step.SessionId), (after.Summary, after.Elapsed, after.SessionId));
            Assert.True(step.Elapsed > TimeSpan.Zero);
            Assert.True(c.Runs(users[step.StepId]) == 1, $"step {step.StepId}, checkpointed before the kill, ran {c.Runs(users[step.StepId])} times");
        }
        Assert.Empty((await c.Reminders.ReadRows(job.GetGrainId())).Reminders);
    }

    [Fact]
    public async Task A_watcher_follows_the_job_across_the_death_of_its_silo()
    {
        await using var c = await JobCluster.StartAsync(3, contextLength: 4096, o => o.MaxConcurrentSteps = 3);
        c.Hooks.TokenDelay = TimeSpan.FromMilliseconds(2);
        var doc = JobTestData.Document(30_000, "follow");
        var options = new SummaryOptions(ChunkTokens: 2048);
        var info = await c.SubmitAsync(doc, options);
        var job = c.Job(info.JobId);

        var seen = new List<JobProgress>();
        var killed = false;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(120));
        await foreach (var p in SummarizationJobs.FollowAsync(c.Client, info.JobId, cancellationToken: timeout.Token))
        {
            seen.Add(p);
            if (!killed && p.StepsDone >= 3)
            {
                killed = true;
                await c.Cluster.KillSiloAsync(c.Cluster.Silos[c.HostOf(job)], TestContext.Current.CancellationToken);
            }
        }
        Assert.True(killed);
        Assert.Equal(JobStatus.Succeeded, seen[^1].Status);
        Assert.All(seen.Zip(seen.Skip(1)), p => Assert.True(p.Second.StepsDone >= p.First.StepsDone, "steps done went down"));
        Assert.True(c.StoredJob(info.JobId)!.Runs >= 2);
        JobTestData.AssertFollowsPlan(c.Model, doc, options, await job.GetResult());
    }

    [Fact]
    public async Task A_job_resumes_by_itself_after_the_whole_cluster_restarts()
    {
        await using var c = await JobCluster.StartAsync(2, contextLength: 4096, o => o.MaxConcurrentSteps = 2);
        c.Hooks.TokenDelay = TimeSpan.FromMilliseconds(2);
        var doc = JobTestData.Document(24_000, "restart");
        var options = new SummaryOptions(ChunkTokens: 2048);
        var info = await c.SubmitAsync(doc, options);
        await WaitUntil(async () => (await c.Job(info.JobId).GetProgress()).StepsDone >= 3, TimeSpan.FromSeconds(60), "3 checkpointed steps");
        var before = await c.Job(info.JobId).GetResult();

        await c.RestartAsync(); // graceful: the job's activation stops its steps and stays Running in storage
        Assert.Equal(JobStatus.Running, c.StoredJob(info.JobId)!.Status);

        await WaitUntil(() => Task.FromResult(c.StoredJob(info.JobId)?.Status is JobStatus.Succeeded or JobStatus.Failed),
            TimeSpan.FromSeconds(120), "the job to finish after the restart");
        var stored = c.StoredJob(info.JobId)!;
        Assert.True(stored.Status == JobStatus.Succeeded, stored.Error);
        var result = await c.Job(info.JobId).GetResult();
        var users = JobTestData.AssertFollowsPlan(c.Model, doc, options, result);
        foreach (var step in before.Steps)
            Assert.True(c.Runs(users[step.StepId]) == 1, $"step {step.StepId}, checkpointed before the restart, ran {c.Runs(users[step.StepId])} times");
    }
}

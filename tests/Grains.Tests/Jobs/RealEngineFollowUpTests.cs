using Actors.Abstractions;
using Actors.Engine.Runtime;
using Actors.Grains.Jobs.Planning;
using Actors.Silo;
using Microsoft.Extensions.DependencyInjection;
using Orleans.TestingHost;

namespace Actors.Grains.Tests.Jobs;

/// <summary>Item 5 on the real CPU engine (the tiny Qwen2 fixture): a follow-up question reuses the document's KV pages.</summary>
public sealed class RealEngineFollowUpTests
{
    private static string RealModel()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Actors.sln")))
                return Path.Combine(d.FullName, "tests", "fixtures", "models", "qwen2");
        throw new DirectoryNotFoundException("repository root (Actors.sln) not found above " + AppContext.BaseDirectory);
    }

    [Fact]
    public async Task A_follow_up_question_on_a_summarized_document_hits_its_cached_prefix()
    {
        await using var h = new ClusterHarness();
        var builder = new InProcessTestClusterBuilder(1);
        var options = new ActorsSiloOptions { DataDirectory = h.DataDirectory, UseLocalhostClustering = false };
        builder.ConfigureSilo((_, silo) =>
        {
            silo.ConfigureActorsSilo(options);
            silo.Services.AddTextGeneratorFactory(dir => TextGenerator.Load(dir, new EngineOptions { KvPages = 256 }));
        });
        await using var cluster = builder.Build();
        await cluster.DeployAsync(TestContext.Current.CancellationToken);
        var model = RealModel();
        const string doc = "The keeper lit the lamp at sunset and trimmed the wick every few hours until sunrise. " +
                           "Ships passing the reef saw the light and kept to the deep channel. In winter storms he stayed awake all night.";
        var summaryOptions = new SummaryOptions(TargetWords: 20);

        var info = await SummarizationJobs.SubmitAsync(cluster.Client, new SubmitJob(model, summaryOptions, Text: doc));
        JobProgress? last = null;
        await foreach (var p in cluster.Client.GetGrain<ISummarizationJobGrain>(info.JobId).Watch(TestContext.Current.CancellationToken)) last = p;
        Assert.True(last!.Status == JobStatus.Succeeded, last.Error);
        Assert.Equal(JobPlanKind.Direct, last.Plan);
        var result = await cluster.Client.GetGrain<ISummarizationJobGrain>(info.JobId).GetResult();

        var generator = (TextGenerator)await cluster.Silos[0].ServiceProvider.GetRequiredService<IModelHost>().GetAsync(model, TestContext.Current.CancellationToken);
        var directPrompt = generator.EncodeChat([.. SummaryPrompts.Direct(doc, summaryOptions)], addGenerationPrompt: true).Count;
        Assert.Equal(directPrompt, result.Steps[0].PromptTokens);
        var pageSize = EngineOptions.DefaultPageSize;
        Assert.True(directPrompt >= 3 * pageSize, $"direct prompt of {directPrompt} tokens is too short to show page hits");

        var hitsBefore = generator.Engine.Metrics.PrefixHitTokens;
        var session = cluster.Client.GetGrain<IDocumentGrain>(result.FollowUpSessionId!);
        GenerationStats? stats = null;
        await foreach (var c in session.Ask(new AskRequest("Who saw the light?", MaxNewTokens: 4), TestContext.Current.CancellationToken))
            stats ??= c.Stats;
        var hits = generator.Engine.Metrics.PrefixHitTokens - hitsBefore;

        // Every full page of the direct prompt (system, document) was found in the cache, not prefilled again.
        Assert.True(stats!.PromptTokens > directPrompt);
        Assert.True(hits >= directPrompt / pageSize * pageSize, $"follow-up hit {hits} cached tokens; the direct prompt has {directPrompt}");
        Assert.True(hits < stats.PromptTokens);
    }
}

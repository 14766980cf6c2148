using Orleans.TestingHost;
using Actors.Abstractions;
using Actors.Engine;
using Actors.Grains.Placement;
using Actors.Grains.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace Actors.Grains.Tests.Kv;

/// <summary>
/// Sessions resume through the KV tiers (ARCHITECTURE.md §3) on in-process clusters of three silos serving the real
/// Qwen2 fixture on the CPU engine. Every answer is compared with the same conversation run uninterrupted on one engine
/// (<see cref="ReferenceConversations"/>), and GenerationStats and the Actors.Grains metrics must name the tier.
/// </summary>
public sealed class KvResumeClusterTests
{
    // Long enough that every turn's prompt fills whole pages (a page is 16 tokens).
    private static readonly string[] Lamp =
    [
        "The keeper lit the lamp at sunset and trimmed the wick every few hours until sunrise. Why did he trim it?",
        "And what did the keeper do when the fog rolled in from the sea during the long winter night?",
        "Finally, who relieved the keeper in the morning, and what did they say to each other?",
    ];

    private static string[] Questions(int i) =>
    [
        $"Session {i}: the ship number {i * 7} sailed past the lighthouse at dawn with a cargo of tea. Where to?",
        $"Session {i}: tell me how many sailors were aboard ship {i * 7} and who their captain was.",
    ];

    [Fact]
    public async Task A_session_whose_KV_went_to_host_resumes_with_identical_tokens_and_the_host_tier_is_reported()
    {
        using var reference = new ReferenceConversations();
        var expected = await reference.AnswersAsync(Lamp);
        await using var c = await KvCluster.StartAsync();
        var s = c.Session("host-1");
        await s.Open(new OpenSession(KvCluster.Model));

        var (a1, st1) = await KvCluster.AskAsync(s, Lamp[0]);
        Assert.Equal(expected[0], a1);
        Assert.Equal(KvResumeTier.Recompute, st1.KvTier); // a fresh engine holds nothing
        Assert.Equal(0, st1.CachedPromptTokens);

        // Move the session's pages from the device to the host pool of its silo.
        var silo = c.SiloOf("host-1")!;
        var tiers = KvCluster.EngineOf(silo)!.KvTiers!;
        var tokens = c.StoredState("host-1")!.TokenIds;
        var moved = await tiers.OffloadAsync(tokens, TestContext.Current.CancellationToken);
        Assert.Equal(SessionKvSnapshots.CachedPagesTokens(tokens.Count, KvCluster.PageSize), moved);
        Assert.Equal(new KvResidency(0, moved), tiers.Probe(tokens));
        // The pages-per-tier gauge of the silos sees them on host.
        c.Metrics.Observe();
        Assert.Equal(moved / KvCluster.PageSize, c.Metrics.Sum(GrainMetrics.PagesName, "host"));
        Assert.Equal(0, c.Metrics.Sum(GrainMetrics.PagesName, "device_cached"));

        var (a2, st2) = await KvCluster.AskAsync(s, Lamp[1]);
        Assert.Equal(expected[1], a2);
        Assert.Equal(KvResumeTier.Host, st2.KvTier);
        // At least the first turn's prompt pages came back from host (the re-encoded answer may differ from the generated ids).
        Assert.InRange(st2.CachedPromptTokens, st1.PromptTokens / KvCluster.PageSize * KvCluster.PageSize, st2.PromptTokens - 1);
        Assert.Same(silo, c.SiloOf("host-1"));

        var (a3, st3) = await KvCluster.AskAsync(s, Lamp[2]);
        Assert.Equal(expected[2], a3);
        Assert.Equal(KvResumeTier.Device, st3.KvTier);

        Assert.Equal(1, c.Metrics.Sum(GrainMetrics.ResumesName, "host"));
        Assert.Equal(1, c.Metrics.Sum(GrainMetrics.ResumesName, "device"));
        Assert.Equal(0, c.Metrics.Sum(GrainMetrics.ResumesName, "recompute")); // the first turn is no resume
        Assert.Equal(3, c.Metrics.Sum(GrainMetrics.TurnsName));
        Assert.Equal(1, c.Metrics.Count(GrainMetrics.TimeToFirstTokenName, "host"));
        Assert.Equal(st1.GeneratedTokens + st2.GeneratedTokens + st3.GeneratedTokens, c.Metrics.Sum(GrainMetrics.GeneratedTokensName));
    }

    [Fact]
    public async Task Under_host_pool_pressure_a_session_stores_its_snapshot_after_the_turn_without_deactivating()
    {
        // Pressure at any host use: the session's pages in the host pool make the next turn store a snapshot.
        await using var c = await KvCluster.StartAsync(configure: silo =>
            silo.Services.Configure<SessionKvOptions>(o => o.SnapshotAtHostPressure = 0.01));
        var s = c.Session("pressure-1");
        await s.Open(new OpenSession(KvCluster.Model));
        await KvCluster.AskAsync(s, Lamp[0]);
        Assert.False(await c.Snapshots().ExistsAsync("pressure-1", TestContext.Current.CancellationToken)); // no host use yet

        var silo = c.SiloOf("pressure-1")!;
        var tiers = KvCluster.EngineOf(silo)!.KvTiers!;
        await tiers.OffloadAsync(c.StoredState("pressure-1")!.TokenIds, TestContext.Current.CancellationToken);
        var (_, st) = await KvCluster.AskAsync(s, Lamp[1]);
        Assert.Equal(KvResumeTier.Host, st.KvTier);

        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!await c.Snapshots().ExistsAsync("pressure-1", TestContext.Current.CancellationToken) && DateTime.UtcNow < deadline)
            await Task.Delay(50, TestContext.Current.CancellationToken);
        Assert.True(await c.Snapshots().ExistsAsync("pressure-1", TestContext.Current.CancellationToken), $"no snapshot; tiers {tiers.TierStats}");
        Assert.Same(silo, c.SiloOf("pressure-1")); // still active: the snapshot did not need a deactivation
        // The next turn runs after the snapshot (same lock) and the stored state records what the blob holds.
        await KvCluster.AskAsync(s, Lamp[2]);
        Assert.True(c.StoredState("pressure-1")!.SnapshotTokens >= KvCluster.PageSize);
    }

    [Fact]
    public async Task A_session_whose_KV_went_to_blob_resumes_with_identical_tokens_and_the_blob_tier_is_reported()
    {
        using var reference = new ReferenceConversations();
        var expected = await reference.AnswersAsync(Lamp);
        await using var c = await KvCluster.StartAsync();
        var s = c.Session("blob-1");
        await s.Open(new OpenSession(KvCluster.Model));
        Assert.Equal(expected[0], (await KvCluster.AskAsync(s, Lamp[0])).Text);
        Assert.Equal(expected[1], (await KvCluster.AskAsync(s, Lamp[1])).Text);
        var tokens = c.StoredState("blob-1")!.TokenIds;

        // Deactivation writes the snapshot (and records how much of the session it holds).
        await c.Cluster.DeactivateAsync(s);
        Assert.True(await c.Snapshots().ExistsAsync("blob-1", TestContext.Current.CancellationToken));
        Assert.Equal(SessionKvSnapshots.CachedPagesTokens(tokens.Count, KvCluster.PageSize), c.StoredState("blob-1")!.SnapshotTokens);
        Assert.Equal(1, c.Metrics.CountTagged(GrainMetrics.SnapshotsName, "outcome", "saved"));

        // New engines everywhere: neither device nor host holds a page; only the blob does.
        await c.RestartAsync();
        var again = c.Session("blob-1");
        var (a3, st3) = await KvCluster.AskAsync(again, Lamp[2]);
        Assert.Equal(expected[2], a3);
        Assert.Equal(KvResumeTier.Blob, st3.KvTier);
        Assert.True(st3.CachedPromptTokens >= SessionKvSnapshots.CachedPagesTokens(tokens.Count, KvCluster.PageSize),
            $"{st3.CachedPromptTokens} cached of {st3.PromptTokens}");
        Assert.Equal(1, c.Metrics.Sum(GrainMetrics.ResumesName, "blob"));
        Assert.Equal(1, c.Metrics.Count(GrainMetrics.TimeToFirstTokenName, "blob"));
        Assert.Equal(6, (await again.GetTurns()).Count);
    }

    /// <summary>
    /// Sessions "{prefix}-0" .. answer their first question (checked against an uninterrupted reference run); returns
    /// every session's reference answers, the silo to stop (not the first, which hosts the test cluster's membership;
    /// the one holding the most sessions) and the sessions on it.
    /// </summary>
    private static async Task<(List<List<string>> Expected, InProcessSiloHandle Victim, List<int> OnVictim)> FirstTurnsAsync(KvCluster c, string prefix, int sessions)
    {
        var expected = new List<List<string>>();
        using (var reference = new ReferenceConversations())
            for (var i = 0; i < sessions; i++) expected.Add(await reference.AnswersAsync(Questions(i)));
        for (var i = 0; i < sessions; i++)
        {
            var s = c.Session($"{prefix}-{i}");
            await s.Open(new OpenSession(KvCluster.Model));
            Assert.Equal(expected[i][0], (await KvCluster.AskAsync(s, Questions(i)[0])).Text);
        }
        var where = Enumerable.Range(0, sessions).ToDictionary(i => i, i => c.SiloOf($"{prefix}-{i}")!);
        var victim = c.Cluster.Silos.Skip(1).MaxBy(h => where.Values.Count(v => v == h))!;
        var onVictim = where.Where(kv => kv.Value == victim).Select(kv => kv.Key).ToList();
        Assert.NotEmpty(onVictim);
        return (expected, victim, onVictim);
    }

    [Fact]
    public async Task Sessions_of_a_silo_stopped_gracefully_reach_blob_and_resume_on_other_silos_identically()
    {
        const int sessions = 6;
        await using var c = await KvCluster.StartAsync();
        var (expected, victim, moved) = await FirstTurnsAsync(c, "g", sessions);

        await c.Cluster.StopSiloAsync(victim, TestContext.Current.CancellationToken);
        foreach (var i in moved)
            Assert.True(await c.Snapshots().ExistsAsync($"g-{i}", TestContext.Current.CancellationToken), $"g-{i} has no snapshot after a graceful stop");

        for (var i = 0; i < sessions; i++)
        {
            var (text, stats) = await KvCluster.AskAsync(c.Session($"g-{i}"), Questions(i)[1]);
            Assert.Equal(expected[i][1], text);
            Assert.NotEqual(victim, c.SiloOf($"g-{i}"));
            // Moved sessions find their pages only in blob; the others still on their device.
            Assert.Equal(moved.Contains(i) ? KvResumeTier.Blob : KvResumeTier.Device, stats.KvTier);
        }
        Assert.Equal(moved.Count, c.Metrics.Sum(GrainMetrics.ResumesName, "blob"));
    }

    [Fact]
    public async Task Sessions_of_a_killed_silo_resume_on_other_silos_by_recompute_without_losing_an_acknowledged_turn()
    {
        const int sessions = 6;
        await using var c = await KvCluster.StartAsync();
        var (expected, victim, lost) = await FirstTurnsAsync(c, "k", sessions);

        await c.Cluster.KillSiloAsync(victim, TestContext.Current.CancellationToken);
        await c.Cluster.WaitForLivenessToStabilizeAsync();

        for (var i = 0; i < sessions; i++)
        {
            var s = c.Session($"k-{i}");
            // Every acknowledged turn is there before the next one starts.
            Assert.Equal([new Turn("user", Questions(i)[0]), new Turn("assistant", expected[i][0])], await s.GetTurns());
            var (text, stats) = await KvCluster.AskAsync(s, Questions(i)[1]);
            Assert.Equal(expected[i][1], text);
            // No snapshot was written by a killed silo: its sessions recompute from their persisted tokens.
            Assert.Equal(lost.Contains(i) ? KvResumeTier.Recompute : KvResumeTier.Device, stats.KvTier);
            Assert.Equal(4, (await s.GetTurns()).Count);
        }
        foreach (var i in lost) Assert.False(await c.Snapshots().ExistsAsync($"k-{i}", TestContext.Current.CancellationToken));
        Assert.Equal(lost.Count, c.Metrics.Sum(GrainMetrics.ResumesName, "recompute"));
    }

    [Fact]
    public async Task Fifty_sessions_asking_about_one_document_hold_about_one_copy_of_its_pages()
    {
        const int sessions = 50;
        var document = string.Join(" ", Enumerable.Range(0, 5).Select(i =>
            $"Line {i}: the lighthouse keeper logged the wind, the tide and every passing ship."));
        await using var c = await KvCluster.StartAsync();
        var docPages = 0;
        var stats = new List<(string Silo, GenerationStats Stats)>();
        for (var i = 0; i < sessions; i++)
        {
            var s = c.Session($"doc-{i}");
            await s.Open(new OpenSession(KvCluster.Model, SystemPrompt: document));
            var (_, st) = await KvCluster.AskAsync(s, $"Question {i}: what happened at hour {i}?");
            stats.Add((c.SiloOf($"doc-{i}")!.SiloAddress.ToString(), st));
            if (i == 0)
            {
                var g = KvCluster.EngineOf(c.SiloOf("doc-0")!)!;
                var systemOnly = g.EncodeChat([new Actors.Engine.Chat.ChatMessage("system", document)], addGenerationPrompt: false);
                docPages = systemOnly.Count / KvCluster.PageSize;
                Assert.True(docPages >= 8, $"the document should span several pages, got {systemOnly.Count} tokens");
            }
        }

        // The first session on each silo computes the document; every later one finds its pages on the device.
        foreach (var group in stats.GroupBy(x => x.Silo))
        {
            Assert.Equal(KvResumeTier.Recompute, group.First().Stats.KvTier);
            Assert.All(group.Skip(1), x =>
            {
                Assert.Equal(KvResumeTier.Device, x.Stats.KvTier);
                Assert.True(x.Stats.CachedPromptTokens >= docPages * KvCluster.PageSize, $"{x.Stats.CachedPromptTokens} cached");
            });
        }

        // Pages the devices hold (in use or cached): one document per silo that served it plus each session's own tail.
        long held = 0;
        var tailPages = 0;
        foreach (var (_, st) in stats)
            tailPages += (st.PromptTokens + st.GeneratedTokens + KvCluster.PageSize - 1) / KvCluster.PageSize - docPages;
        var silosUsed = stats.Select(x => x.Silo).Distinct().Count();
        foreach (var silo in c.Cluster.Silos)
        {
            if (KvCluster.EngineOf(silo)?.KvTiers is not { } tiers) continue;
            var t = tiers.TierStats;
            held += t.DevicePagesTotal - t.DevicePagesFree + t.DevicePagesCached + t.HostPagesUsed;

            // The silo reports its engine's pools to placement.
            var report = silo.ServiceProvider.GetRequiredService<IDeviceStatsSource>().Capture(100);
            var d = Assert.Single(report.Devices);
            Assert.Equal(t.DevicePagesTotal, d.TotalPages);
            Assert.Equal(t.DevicePagesFree, d.FreePages);
            Assert.Equal(t.HostPagesUsed, d.PagesOnHost);
            Assert.Equal(KvCluster.PageBytes, d.PageBytes);
            Assert.Equal(0, d.QueueDepth);
            Assert.NotEmpty(report.Sessions);
        }
        // At most one copy of the document per silo that served it, beside the sessions' own tails.
        Assert.InRange(held, docPages, silosUsed * docPages + tailPages);
        // Without sharing the fifty sessions would need 50 copies plus their tails: the silos hold under a quarter of that.
        Assert.True(held * 4 < sessions * docPages + tailPages, $"held {held} pages; one document is {docPages}, tails {tailPages}");
    }

    [Fact]
    public async Task Corrupt_and_foreign_snapshots_and_a_storage_outage_fall_back_to_recompute()
    {
        string[] ids = ["corrupt", "foreign", "outage", "good"];
        using var reference = new ReferenceConversations();
        var expected = new Dictionary<string, List<string>>();
        for (var i = 0; i < ids.Length; i++) expected[ids[i]] = await reference.AnswersAsync(Questions(100 + i));
        await using var c = await KvCluster.StartAsync();
        for (var i = 0; i < ids.Length; i++)
        {
            var s = c.Session(ids[i]);
            await s.Open(new OpenSession(KvCluster.Model));
            Assert.Equal(expected[ids[i]][0], (await KvCluster.AskAsync(s, Questions(100 + i)[0])).Text);
            await c.Cluster.DeactivateAsync(s);
            Assert.True(await c.Snapshots().ExistsAsync(ids[i], TestContext.Current.CancellationToken));
        }
        var store = c.Snapshots();
        // Corrupt: one byte flipped in the middle of the pages.
        var name = KvSnapshotStore.BlobName("corrupt");
        byte[] bytes;
        await using (var d = (await store.Blobs.GetAsync(name, TestContext.Current.CancellationToken))!)
        {
            using var ms = new MemoryStream();
            await d.Content.CopyToAsync(ms, TestContext.Current.CancellationToken);
            bytes = ms.ToArray();
        }
        bytes[bytes.Length / 2] ^= 0x01;
        await store.Blobs.PutAsync(name, new MemoryStream(bytes), cancellationToken: TestContext.Current.CancellationToken);
        // Foreign: a valid snapshot of the session's tokens under another model id.
        var tokens = c.StoredState("foreign")!.TokenIds;
        var f = KvCluster.EngineOf(c.Cluster.Silos.First(s => KvCluster.EngineOf(s) is not null))!.KvTiers!.PageFormat;
        var header = new KvSnapshotHeader("hf:someone/another-model", f.RopeProfile, KvDType.F32, f.PageSize, f.LayerCount, f.KvHeads, f.HeadDim,
            tokens.Take(tokens.Count / f.PageSize * f.PageSize).ToArray());
        await store.SaveAsync("foreign", header, async (w, ct) =>
        {
            for (var p = 0; p < header.PageCount; p++) await w.WritePageAsync(new byte[f.PageBytes], ct);
        }, TestContext.Current.CancellationToken);

        await c.RestartAsync();

        foreach (var id in new[] { "corrupt", "foreign" })
        {
            var (text, st) = await KvCluster.AskAsync(c.Session(id), Questions(100 + Array.IndexOf(ids, id))[1]);
            Assert.Equal(expected[id][1], text);
            Assert.Equal(KvResumeTier.Recompute, st.KvTier);
            Assert.False(await c.Snapshots().ExistsAsync(id, TestContext.Current.CancellationToken)); // discarded
        }
        Assert.Equal(1, c.Metrics.CountTagged(GrainMetrics.SnapshotsName, "outcome", "corrupt"));
        Assert.Equal(1, c.Metrics.CountTagged(GrainMetrics.SnapshotsName, "outcome", "foreign"));

        // Storage outage mid-test: the turn recomputes and is persisted; the deactivation's snapshot is given up quietly.
        c.Store.Outage = () => new IOException("blob storage is down (test)");
        var outage = c.Session("outage");
        var (o2, ost) = await KvCluster.AskAsync(outage, Questions(102)[1]);
        Assert.Equal(expected["outage"][1], o2);
        Assert.Equal(KvResumeTier.Recompute, ost.KvTier);
        await c.Cluster.DeactivateAsync(outage);
        Assert.Equal(4, (await outage.GetTurns()).Count);
        c.Store.Outage = null;
        Assert.True(await c.Snapshots().ExistsAsync("outage", TestContext.Current.CancellationToken)); // kept for a later try

        // The control: an intact snapshot serves its session.
        var (g2, gst) = await KvCluster.AskAsync(c.Session("good"), Questions(103)[1]);
        Assert.Equal(expected["good"][1], g2);
        Assert.Equal(KvResumeTier.Blob, gst.KvTier);
        Assert.Equal(3, c.Metrics.Sum(GrainMetrics.ResumesName, "recompute"));
        Assert.Equal(1, c.Metrics.Sum(GrainMetrics.ResumesName, "blob"));
        Assert.Equal(4, c.Metrics.CountTagged(GrainMetrics.SnapshotsName, "outcome", "saved"));
    }

    [Fact]
    public async Task A_snapshot_in_Azure_blob_storage_serves_the_resume_and_an_Azurite_outage_falls_back_to_recompute()
    {
        await using var azurite = await Storage.AzuriteProcess.StartAsync();
        using var reference = new ReferenceConversations();
        var expected = await reference.AnswersAsync(Lamp);
        var other = await reference.AnswersAsync(Questions(7));
        await using var c = await KvCluster.StartAsync(azureConnectionString: azurite.ConnectionString);
        foreach (var (id, first) in new[] { ("az-1", Lamp[0]), ("az-2", Questions(7)[0]) })
        {
            var s = c.Session(id);
            await s.Open(new OpenSession(KvCluster.Model));
            await KvCluster.AskAsync(s, first);
            await c.Cluster.DeactivateAsync(s);
            Assert.True(await c.Snapshots().ExistsAsync(id, TestContext.Current.CancellationToken));
        }
        await c.RestartAsync();

        var (a2, st2) = await KvCluster.AskAsync(c.Session("az-1"), Lamp[1]);
        Assert.Equal(expected[1], a2);
        Assert.Equal(KvResumeTier.Blob, st2.KvTier);

        // Azurite gone mid-test: the next resume recomputes, and the turn is still answered and stored.
        await azurite.KillAsync();
        var (b2, bst2) = await KvCluster.AskAsync(c.Session("az-2"), Questions(7)[1]);
        Assert.Equal(other[1], b2);
        Assert.Equal(KvResumeTier.Recompute, bst2.KvTier);
        Assert.Equal(4, (await c.Session("az-2").GetTurns()).Count);
    }

    [Fact]
    public async Task Opening_a_session_with_a_wrong_model_is_a_clear_error_and_another_models_KV_is_never_used()
    {
        using var reference = new ReferenceConversations();
        var expected = await reference.AnswersAsync(Lamp[0], Lamp[1]);
        await using var c = await KvCluster.StartAsync();
        var s = c.Session("wrong-model");
        await s.Open(new OpenSession(KvCluster.Model));
        var (a1, _) = await KvCluster.AskAsync(s, Lamp[0]);

        var missing = Path.Combine(c.Root, "no-such-model");
        var e1 = await Assert.ThrowsAsync<ArgumentException>(() => s.Open(new OpenSession(missing)));
        Assert.Contains(missing, e1.Message);
        Assert.Contains("does not exist", e1.Message);

        // A directory that is not a model: its config names the problem.
        var notAModel = Path.Combine(c.Root, "not-a-model");
        Directory.CreateDirectory(notAModel);
        File.WriteAllText(Path.Combine(notAModel, "config.json"), """{"model_id": "char", "context_length": 64}""");
        var e2 = await Assert.ThrowsAsync<InvalidOperationException>(() => s.Open(new OpenSession(notAModel)));
        Assert.Contains("config.json", e2.Message);
        Assert.Equal(KvCluster.Model, (await s.GetInfo()).ModelRef);
        Assert.Equal(2, (await s.GetTurns()).Count);

        // The same weights under another directory are another model id: nothing of the old model's KV (device pages,
        // snapshot) may serve it, so the history is recomputed under the new id, with the same answer.
        await c.Cluster.DeactivateAsync(s);
        Assert.True(await c.Snapshots().ExistsAsync("wrong-model", TestContext.Current.CancellationToken));
        var copy = Path.Combine(c.Root, "qwen2-copy");
        Directory.CreateDirectory(copy);
        foreach (var file in Directory.GetFiles(KvCluster.Model)) File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        await s.Open(new OpenSession(copy));
        var (a2, st) = await KvCluster.AskAsync(s, Lamp[1]);
        Assert.Equal(expected[0], a1);
        Assert.Equal(expected[1], a2);
        Assert.Equal(KvResumeTier.Recompute, st.KvTier);
        Assert.Equal(0, st.CachedPromptTokens);
        Assert.Equal(4, (await s.GetTurns()).Count);
        Assert.Equal("user", (await s.GetTurns())[0].Role);
        Assert.Equal(a1, (await s.GetTurns())[1].Content);
    }
}

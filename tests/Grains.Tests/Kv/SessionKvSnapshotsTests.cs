using Actors.Abstractions;
using Actors.Engine;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;
using Actors.Grains.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Actors.Grains.Tests.Kv;

/// <summary>The blob side of the tiers against the real CPU engine and the local-disk store, without a cluster.</summary>
public sealed class SessionKvSnapshotsTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "actors-kvsnap-" + Guid.NewGuid().ToString("N"));
    private readonly GrainMetrics _metrics = new(null);
    private readonly KvSnapshotStore _store;
    private readonly StoreSwitch _switch = new();

    public SessionKvSnapshotsTests()
    {
        _store = new KvSnapshotStore(_switch.Wrap(new LocalDiskBlobStore(_root)));
    }

    public void Dispose()
    {
        _metrics.Dispose();
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    private SessionKvSnapshots Snapshots(TimeSpan? loadTimeout = null) => new(_store, _metrics,
        Options.Create(new SessionKvOptions { SnapshotLoadTimeout = loadTimeout ?? SessionKvOptions.DefaultSnapshotLoadTimeout }),
        NullLogger<SessionKvSnapshots>.Instance);

    /// <summary>Runs a prompt to the end on <paramref name="g"/>; returns prompt + generated token ids (what a session persists).</summary>
    private static async Task<List<int>> RunAsync(TextGenerator g, string text, Action<KvAdmission>? admitted = null)
    {
        var prompt = g.EncodeChat([new Actors.Engine.Chat.ChatMessage("user", text)], addGenerationPrompt: true);
        var tokens = new List<int>(prompt);
        await foreach (var t in g.GenerateAsync(prompt, SamplingParams.Greedy(KvCluster.MaxNewTokens), admitted, TestContext.Current.CancellationToken))
            tokens.Add(t);
        return tokens;
    }

    private const string Question = "The keeper lit the lamp at sunset and trimmed the wick every few hours until sunrise. Why?";

    [Fact]
    public async Task A_saved_snapshot_restores_into_another_engines_host_pool_bit_for_bit()
    {
        using var a = TextGenerator.Load(KvCluster.Model, KvCluster.Engine);
        var tokens = await RunAsync(a, Question);
        var full = SessionKvSnapshots.CachedPagesTokens(tokens.Count, KvCluster.PageSize);
        Assert.True(full >= 2 * KvCluster.PageSize, $"the question should fill at least two pages, got {tokens.Count} tokens");

        var saved = await Snapshots().SaveAsync("s1", a.KvTiers, tokens, storedTokens: 0, TestContext.Current.CancellationToken);
        Assert.True(saved.Saved, saved.Reason);
        Assert.Equal(full, saved.Tokens);
        // Nothing new to store: the blob holds as much as the engine.
        var again = await Snapshots().SaveAsync("s1", a.KvTiers, tokens, storedTokens: saved.Tokens, TestContext.Current.CancellationToken);
        Assert.False(again.Saved);

        using var b = TextGenerator.Load(KvCluster.Model, KvCluster.Engine);
        Assert.Equal(new KvResidency(0, 0), b.KvTiers.Probe(tokens));
        var restored = await Snapshots().RestoreAsync("s1", b.KvTiers, tokens, TestContext.Current.CancellationToken);
        Assert.True(restored.Imported, restored.Reason);
        Assert.Equal(full, restored.ImportedTokens);
        Assert.Equal(new KvResidency(0, full), b.KvTiers.Probe(tokens));

        // The imported pages are the exporter's bytes exactly.
        var fromA = (await a.KvTiers.ExportAsync(tokens, TestContext.Current.CancellationToken))!;
        var fromB = (await b.KvTiers.ExportAsync(tokens, TestContext.Current.CancellationToken))!;
        Assert.Equal(fromA.Tokens, fromB.Tokens);
        for (var i = 0; i < fromA.Pages.Count; i++) Assert.True(fromA.Pages[i].Span.SequenceEqual(fromB.Pages[i].Span), $"page {i} differs");

        // Once the tiers hold everything, nothing is downloaded.
        var noop = await Snapshots().RestoreAsync("s1", b.KvTiers, tokens, TestContext.Current.CancellationToken);
        Assert.False(noop.Imported);
        Assert.Null(noop.Status);
    }

    [Fact]
    public async Task Corrupt_foreign_missing_and_unreachable_snapshots_are_answers_not_exceptions()
    {
        using var a = TextGenerator.Load(KvCluster.Model, KvCluster.Engine);
        var tokens = await RunAsync(a, Question);
        Assert.True((await Snapshots().SaveAsync("c", a.KvTiers, tokens, 0, TestContext.Current.CancellationToken)).Saved);
        Assert.True((await Snapshots().SaveAsync("o", a.KvTiers, tokens, 0, TestContext.Current.CancellationToken)).Saved);
        using var b = TextGenerator.Load(KvCluster.Model, KvCluster.Engine);

        // Missing.
        var missing = await Snapshots().RestoreAsync("nobody", b.KvTiers, tokens, TestContext.Current.CancellationToken);
        Assert.Equal(KvSnapshotLoadStatus.Missing, missing.Status);
        Assert.False(missing.Imported);

        // Corrupt: one page byte flipped; the store deletes it.
        var name = KvSnapshotStore.BlobName("c");
        byte[] bytes;
        await using (var d = (await _store.Blobs.GetAsync(name, TestContext.Current.CancellationToken))!)
        {
            using var ms = new MemoryStream();
            await d.Content.CopyToAsync(ms, TestContext.Current.CancellationToken);
            bytes = ms.ToArray();
        }
        bytes[bytes.Length / 2] ^= 0x40;
        await _store.Blobs.PutAsync(name, new MemoryStream(bytes), cancellationToken: TestContext.Current.CancellationToken);
        var corrupt = await Snapshots().RestoreAsync("c", b.KvTiers, tokens, TestContext.Current.CancellationToken);
        Assert.Equal(KvSnapshotLoadStatus.Corrupt, corrupt.Status);
        Assert.False(corrupt.Imported);
        Assert.False(await _store.ExistsAsync("c", TestContext.Current.CancellationToken));
        Assert.Equal(new KvResidency(0, 0), b.KvTiers.Probe(tokens)); // nothing half-imported

        // Foreign: a valid snapshot of another model with the same geometry.
        var f = a.KvTiers.PageFormat;
        var header = new KvSnapshotHeader("other/model", f.RopeProfile, KvDType.F32, f.PageSize, f.LayerCount, f.KvHeads, f.HeadDim, tokens.Take(f.PageSize).ToArray());
        await _store.SaveAsync("f", header, async (w, ct) => await w.WritePageAsync(new byte[f.PageBytes], ct), TestContext.Current.CancellationToken);
        var foreign = await Snapshots().RestoreAsync("f", b.KvTiers, tokens, TestContext.Current.CancellationToken);
        Assert.Equal(KvSnapshotLoadStatus.Foreign, foreign.Status);
        Assert.Contains("other/model", foreign.Reason);
        Assert.False(await _store.ExistsAsync("f", TestContext.Current.CancellationToken));

        // Outage, typed and untyped: the blob is kept for later.
        _switch.Outage = () => new BlobStoreUnavailableException("store down (test)");
        var typed = await Snapshots().RestoreAsync("o", b.KvTiers, tokens, TestContext.Current.CancellationToken);
        Assert.Equal(KvSnapshotLoadStatus.Unavailable, typed.Status);
        _switch.Outage = () => new IOException("disk gone (test)");
        var untyped = await Snapshots().RestoreAsync("o", b.KvTiers, tokens, TestContext.Current.CancellationToken);
        Assert.Equal(KvSnapshotLoadStatus.Unavailable, untyped.Status);
        Assert.Contains("disk gone", untyped.Reason);
        var save = await Snapshots().SaveAsync("o2", a.KvTiers, tokens, 0, TestContext.Current.CancellationToken);
        Assert.False(save.Saved);
        Assert.Contains("disk gone", save.Reason);
        _switch.Outage = null;
        Assert.True(await _store.ExistsAsync("o", TestContext.Current.CancellationToken));
        Assert.True((await Snapshots().RestoreAsync("o", b.KvTiers, tokens, TestContext.Current.CancellationToken)).Imported);
    }

    [Fact]
    public async Task Only_pages_of_the_sessions_own_tokens_are_imported()
    {
        using var a = TextGenerator.Load(KvCluster.Model, KvCluster.Engine);
        var tokens = await RunAsync(a, Question);
        Assert.True((await Snapshots().SaveAsync("p", a.KvTiers, tokens, 0, TestContext.Current.CancellationToken)).Saved);
        using var b = TextGenerator.Load(KvCluster.Model, KvCluster.Engine);
        // The session's tokens diverge inside the second page: only the first page can serve it.
        var other = tokens.ToList();
        other[KvCluster.PageSize + 3] = other[KvCluster.PageSize + 3] == 5 ? 6 : 5;
        var r = await Snapshots().RestoreAsync("p", b.KvTiers, other, TestContext.Current.CancellationToken);
        Assert.True(r.Imported, r.Reason);
        Assert.Equal(KvCluster.PageSize, r.ImportedTokens);
        Assert.Equal(new KvResidency(0, KvCluster.PageSize), b.KvTiers.Probe(other));
    }

    [Fact]
    public void Classify_follows_the_resume_order()
    {
        // First turns (nothing to resume): whatever the tiers found.
        Assert.Equal(KvResumeTier.Recompute, SessionKvSnapshots.Classify(new PromptKvReport(40, 0, 0), false, 0));
        Assert.Equal(KvResumeTier.Device, SessionKvSnapshots.Classify(new PromptKvReport(40, 32, 0), false, 0));
        // Resumes: the slowest tier that served the session's own 32 tokens.
        Assert.Equal(KvResumeTier.Device, SessionKvSnapshots.Classify(new PromptKvReport(40, 32, 0), false, 32));
        Assert.Equal(KvResumeTier.Host, SessionKvSnapshots.Classify(new PromptKvReport(40, 16, 16), false, 32));
        Assert.Equal(KvResumeTier.Blob, SessionKvSnapshots.Classify(new PromptKvReport(40, 0, 32), true, 32));
        Assert.Equal(KvResumeTier.Recompute, SessionKvSnapshots.Classify(new PromptKvReport(40, 0, 0), true, 32));
        // A shared system prompt page found on the device does not make a recomputed history a device hit.
        Assert.Equal(KvResumeTier.Recompute, SessionKvSnapshots.Classify(new PromptKvReport(40, 16, 0), false, 32));
        Assert.Equal(KvResumeTier.Recompute, SessionKvSnapshots.Classify(new PromptKvReport(40, 0, 16), true, 32));
        Assert.Equal(32, SessionKvSnapshots.ResumableTokens([.. Enumerable.Range(0, 40)], [.. Enumerable.Range(0, 35), 99], 16));
        Assert.Equal(0, SessionKvSnapshots.ResumableTokens([1, 2, 3], [], 16));
        Assert.Equal(0, SessionKvSnapshots.CachedPagesTokens(16, 16)); // the 16th token's KV may not exist
        Assert.Equal(16, SessionKvSnapshots.CachedPagesTokens(17, 16));
        Assert.Equal(0, SessionKvSnapshots.CachedPagesTokens(0, 16));
        Assert.Equal(3, SessionKvSnapshots.MatchedFullPages([1, 2, 3, 4, 5, 6, 7], [1, 2, 3, 4, 5, 6, 9], 2));
        Assert.Equal(0, SessionKvSnapshots.MatchedFullPages([1], [1, 2], 2));
        Assert.Equal(KvDType.BF16, SessionKvSnapshots.DTypeOf("bf16"));
        Assert.Throws<ArgumentException>(() => SessionKvSnapshots.DTypeOf("f16"));
    }
}

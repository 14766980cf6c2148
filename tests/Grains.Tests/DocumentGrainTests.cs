using System.Text;
using Actors.Abstractions;

namespace Actors.Grains.Tests;

public sealed class DocumentGrainTests : IAsyncLifetime
{
    private readonly ClusterHarness _h = new();
    private string _model = "";

    public async ValueTask InitializeAsync()
    {
        _model = _h.MakeModel("char-256", contextLength: 256);
        await _h.StartAsync(silos: 2);
    }

    public ValueTask DisposeAsync() => _h.DisposeAsync();

    private IDocumentGrain Session(string id) => _h.Cluster!.Client.GetGrain<IDocumentGrain>(id);

    private static async Task<(string Text, List<TokenChunk> Chunks)> AskAll(IDocumentGrain grain, string message, int? maxNewTokens = null)
    {
        var chunks = new List<TokenChunk>();
        await foreach (var c in grain.Ask(new AskRequest(message, maxNewTokens), TestContext.Current.CancellationToken))
            chunks.Add(c);
        return (string.Concat(chunks.Select(c => c.Text)), chunks);
    }

    [Fact]
    public async Task Streaming_yields_pieces_in_order_then_one_final_chunk_with_stats()
    {
        var s = Session("stream");
        var info = await s.Open(new OpenSession(_model));
        Assert.True(info.IsOpen);
        Assert.Equal(256, info.ContextLength);

        var (text, chunks) = await AskAll(s, "abc def");

        Assert.Equal("[1] fed cba", text);
        // One byte token per ASCII char: every text chunk is exactly one char, in order; the last chunk carries stats.
        Assert.Equal("[1] fed cba".Select(c => c.ToString()), chunks.SkipLast(1).Select(c => c.Text));
        Assert.All(chunks.SkipLast(1), c => Assert.Null(c.Stats));
        var stats = chunks[^1].Stats;
        Assert.NotNull(stats);
        Assert.Equal("", chunks[^1].Text);
        // BOS, <user>, 7 bytes, <end>, <assistant>
        Assert.Equal(1 + 1 + 7 + 1 + 1, stats.PromptTokens);
        Assert.Equal(11, stats.GeneratedTokens);
        Assert.Equal(FinishReason.EndOfSequence, stats.FinishReason);
        Assert.True(stats.TimeToFirstToken <= stats.Elapsed);

        var turns = await s.GetTurns();
        Assert.Equal([new Turn("user", "abc def"), new Turn("assistant", "[1] fed cba")], turns);
        var stored = _h.ReadStoredState(s)!;
        Assert.Equal(11 + 11, stored.TokenIds.Count); // prompt + generated
    }

    [Fact]
    public async Task Multibyte_text_streams_whole_characters()
    {
        var s = Session("utf8");
        await s.Open(new OpenSession(_model));
        var (text, chunks) = await AskAll(s, "héllo → 世界");
        Assert.Equal(CharModel.ExpectedAnswer(1, "héllo → 世界"), text);
        // Pieces never split a character: each decodes on its own.
        Assert.All(chunks, c => Assert.DoesNotContain('\uFFFD', c.Text));
        Assert.Equal(Encoding.UTF8.GetByteCount(text), chunks[^1].Stats!.GeneratedTokens);
    }

    [Fact]
    public async Task Turns_persist_and_resume_after_deactivation_and_after_cluster_restart()
    {
        var s = Session("resume");
        await s.Open(new OpenSession(_model, SystemPrompt: "be brief"));
        Assert.Equal("[1] eno", (await AskAll(s, "one")).Text);
        Assert.Equal("[2] owt", (await AskAll(s, "two")).Text);
        var before = await s.GetTurns();
        Assert.Equal(4, before.Count);

        await _h.Cluster!.DeactivateAsync(s);
        Assert.Equal(before, await s.GetTurns());
        // The third answer counts three user turns: the prompt was rebuilt from the stored history.
        var (third, chunks) = await AskAll(s, "three");
        Assert.Equal("[3] eerht", third);
        // BOS + system(1+8+1) + 2*(user 1+3+1, assistant 1+7+1) + user(1+5+1) + <assistant>
        Assert.Equal(1 + 10 + 2 * (5 + 9) + 7 + 1, chunks[^1].Stats!.PromptTokens);

        var afterThird = await s.GetTurns();
        await _h.StopAsync();
        await _h.StartAsync(silos: 1);
        var again = Session("resume");
        Assert.Equal(afterThird, await again.GetTurns());
        var info = await again.GetInfo();
        Assert.Equal(_model, info.ModelRef);
        Assert.Equal("be brief", info.SystemPrompt);
        Assert.Equal(6, info.TurnCount);
        Assert.Equal("[4] ruof", (await AskAll(again, "four")).Text);
        Assert.Equal(8, (await again.GetTurns()).Count);
    }

    [Fact]
    public async Task User_turn_is_stored_before_generation_and_assistant_turn_before_the_final_chunk()
    {
        var s = Session("ack");
        await s.Open(new OpenSession(_model));
        DocumentState? atGenerate = null;
        _h.Hooks.OnGenerate = _ => atGenerate = _h.ReadStoredState(s);

        DocumentState? atFinal = null;
        var sawTextBeforeFinal = false;
        await foreach (var c in s.Ask(new AskRequest("ping"), TestContext.Current.CancellationToken))
        {
            if (c.IsFinal) atFinal = _h.ReadStoredState(s);
            else sawTextBeforeFinal = true;
        }

        Assert.True(sawTextBeforeFinal);
        Assert.NotNull(atGenerate);
        Assert.Equal([new Turn("user", "ping")], atGenerate.Turns);
        Assert.NotNull(atFinal);
        Assert.Equal([new Turn("user", "ping"), new Turn("assistant", "[1] gnip")], atFinal.Turns);
    }

    [Fact]
    public async Task Prompt_longer_than_the_context_fails_clearly_and_stores_nothing()
    {
        var small = _h.MakeModel("char-32", contextLength: 32);
        var s = Session("too-long");
        await s.Open(new OpenSession(small));
        Assert.Equal("[1] ih", (await AskAll(s, "hi")).Text);
        var before = _h.ReadStoredState(s)!;

        var e = await Assert.ThrowsAnyAsync<ArgumentException>(() => AskAll(s, new string('x', 40)));
        Assert.Contains("context of 32 tokens", e.Message);
        Assert.Contains("too-long", e.Message);

        Assert.Equal(before.Turns, _h.ReadStoredState(s)!.Turns);
        Assert.Equal(2, (await s.GetTurns()).Count);
    }

    [Fact]
    public async Task Answer_stops_at_max_tokens_and_at_a_full_context()
    {
        var s = Session("limits");
        await s.Open(new OpenSession(_model));
        var (text, chunks) = await AskAll(s, "abcdef", maxNewTokens: 3);
        Assert.Equal("[1]", text);
        Assert.Equal(FinishReason.MaxTokens, chunks[^1].Stats!.FinishReason);

        var tight = _h.MakeModel("char-16", contextLength: 16);
        var t = Session("context-full");
        await t.Open(new OpenSession(tight));
        // prompt: BOS <user> "abcdefghij" <end> <assistant> = 14 tokens, so 2 tokens fit
        var (short2, c2) = await AskAll(t, "abcdefghij");
        Assert.Equal("[1", short2);
        Assert.Equal(FinishReason.ContextFull, c2[^1].Stats!.FinishReason);
        Assert.Equal(new Turn("assistant", "[1"), (await t.GetTurns())[^1]);
    }

    [Fact]
    public async Task A_failure_mid_answer_rolls_the_turn_back()
    {
        var s = Session("fail");
        await s.Open(new OpenSession(_model));
        await AskAll(s, "ok");
        _h.Hooks.FailAfterTokens = 2;
        var e = await Assert.ThrowsAnyAsync<Exception>(() => AskAll(s, "boom"));
        Assert.Contains("simulated device failure", e.ToString());
        _h.Hooks.FailAfterTokens = null;

        Assert.Equal(2, _h.ReadStoredState(s)!.Turns.Count);
        Assert.Equal(2, (await s.GetTurns()).Count);
        Assert.Equal("[2] niaga", (await AskAll(s, "again")).Text);
    }

    [Fact]
    public async Task Two_sessions_answer_concurrently()
    {
        // One silo, so both sessions share one GPU worker: it must interleave them (reentrant), not queue them.
        await _h.StopAsync();
        await _h.StartAsync(silos: 1);
        _h.Hooks.TokenDelay = TimeSpan.FromMilliseconds(15);
        var a = Session("con-a");
        var b = Session("con-b");
        await Task.WhenAll(a.Open(new OpenSession(_model)), b.Open(new OpenSession(_model)));
        var ta = AskAll(a, "first session");
        var tb = AskAll(b, "second one");
        await Task.WhenAll(ta, tb);
        Assert.Equal(CharModel.ExpectedAnswer(1, "first session"), ta.Result.Text);
        Assert.Equal(CharModel.ExpectedAnswer(1, "second one"), tb.Result.Text);
        Assert.True(_h.Hooks.MaxConcurrent >= 2, "the two generations ran one after the other; the worker must interleave sessions");
        Assert.Equal(2, (await a.GetTurns()).Count);
        Assert.Equal(2, (await b.GetTurns()).Count);
    }

    [Fact]
    public async Task Bad_requests_fail_with_clear_errors()
    {
        var fresh = Session("never-opened");
        var e1 = await Assert.ThrowsAnyAsync<InvalidOperationException>(() => AskAll(fresh, "hello"));
        Assert.Contains("not open", e1.Message);

        var e2 = await Assert.ThrowsAnyAsync<ArgumentException>(() => fresh.Open(new OpenSession(null)));
        Assert.Contains("model is required", e2.Message);

        var missing = Path.Combine(_h.Root, "no-such-model");
        var e3 = await Assert.ThrowsAnyAsync<ArgumentException>(() => fresh.Open(new OpenSession(missing)));
        Assert.Contains(missing, e3.Message);

        var notAModel = Path.Combine(_h.Root, "empty-dir");
        Directory.CreateDirectory(notAModel);
        var e4 = await Assert.ThrowsAnyAsync<Exception>(() => fresh.Open(new OpenSession(notAModel)));
        Assert.Contains("has no config.json", e4.Message);
        Assert.False((await fresh.GetInfo()).IsOpen);

        await fresh.Open(new OpenSession(_model));
        var e5 = await Assert.ThrowsAnyAsync<ArgumentException>(() => AskAll(fresh, "   "));
        Assert.Contains("empty", e5.Message);
        Assert.Empty(await fresh.GetTurns());
    }

    [Fact]
    public async Task Summaries_prompt_is_one_user_turn_with_the_instruction()
    {
        var s = Session("summary");
        await s.Open(new OpenSession(_model));
        var doc = "Orleans is an actor framework.";
        var (text, _) = await AskAll(s, Summaries.Prompt(doc));
        Assert.Equal(CharModel.ExpectedAnswer(1, Summaries.Instruction + doc), text);
        Assert.Throws<ArgumentException>(() => Summaries.Prompt(" \n", "doc.txt"));
    }

    [Fact]
    public async Task Each_silo_loads_a_model_once()
    {
        for (var i = 0; i < 6; i++)
        {
            var s = Session($"load-{i}");
            await s.Open(new OpenSession(_model));
            await AskAll(s, "x");
        }
        Assert.InRange(_h.Hooks.Loads, 1, 2);
    }
}

public sealed class CancellationTests : IAsyncLifetime
{
    private readonly ClusterHarness _h = new();

    public async ValueTask InitializeAsync() => await _h.StartAsync(silos: 1);

    public ValueTask DisposeAsync() => _h.DisposeAsync();

    [Fact]
    public async Task Cancelling_an_answer_stops_the_device_and_rolls_the_turn_back()
    {
        var model = _h.MakeModel("char-256", 256);
        var s = _h.Cluster!.Client.GetGrain<IDocumentGrain>("cancel");
        await s.Open(new OpenSession(model));
        await foreach (var _ in s.Ask(new AskRequest("first"), TestContext.Current.CancellationToken)) { }

        _h.Hooks.TokenDelay = TimeSpan.FromMilliseconds(200); // 60 tokens: 12 s if nothing stops it
        using var cts = new CancellationTokenSource();
        var received = 0;
        var e = await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var c in s.Ask(new AskRequest(new string('q', 55)), cts.Token))
            {
                if (++received == 2) cts.Cancel();
            }
        });
        Assert.Equal(2, received);

        var deadline = DateTime.UtcNow.AddSeconds(6);
        while ((Volatile.Read(ref _h.Hooks.Active) != 0 || _h.ReadStoredState(s)!.Turns.Count != 2) && DateTime.UtcNow < deadline)
            await Task.Delay(50, TestContext.Current.CancellationToken);
        Assert.Equal(0, Volatile.Read(ref _h.Hooks.Active));
        Assert.Equal(2, _h.ReadStoredState(s)!.Turns.Count);
        Assert.Equal(2, (await s.GetTurns()).Count);

        _h.Hooks.TokenDelay = TimeSpan.Zero;
        var next = new List<TokenChunk>();
        await foreach (var c in s.Ask(new AskRequest("next"), TestContext.Current.CancellationToken)) next.Add(c);
        Assert.Equal("[2] txen", string.Concat(next.Select(c => c.Text)));
    }
}

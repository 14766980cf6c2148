using Actors.Abstractions;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;

namespace Actors.Abstractions.Tests;

/// <summary>Every record that crosses the wire survives Orleans' serializer unchanged.</summary>
public sealed class SerializationTests
{
    private static readonly Serializer Serializer = new ServiceCollection().AddSerializer().BuildServiceProvider().GetRequiredService<Serializer>();

    private static T RoundTrip<T>(T value) => Serializer.Deserialize<T>(Serializer.SerializeToArray(value))!;

    private static readonly SamplingOptions Custom = new(Temperature: 0.7f, TopK: 40, TopP: 0.9f, Seed: ulong.MaxValue - 3, MaxNewTokens: 77);

    [Fact]
    public void SamplingOptions_round_trips_and_defaults_are_greedy()
    {
        Assert.Equal(Custom, RoundTrip(Custom));
        var g = SamplingOptions.Greedy();
        Assert.Equal(g, RoundTrip(g));
        Assert.Equal(0f, g.Temperature);
        Assert.Equal(SamplingOptions.DefaultMaxNewTokens, g.MaxNewTokens);
    }

    [Fact]
    public void Turn_round_trips()
    {
        var t = new Turn(Turn.AssistantRole, "multi\nline → ünïcode 世界");
        Assert.Equal(t, RoundTrip(t));
    }

    [Fact]
    public void OpenSession_round_trips_with_and_without_optional_fields()
    {
        var full = new OpenSession("/models/llama", "be brief", Custom);
        Assert.Equal(full, RoundTrip(full));
        var bare = new OpenSession(null);
        var back = RoundTrip(bare);
        Assert.Null(back.ModelRef);
        Assert.Null(back.SystemPrompt);
        Assert.Null(back.Sampling);
    }

    [Fact]
    public void SessionInfo_round_trips()
    {
        var i = new SessionInfo("s-1", true, "/m", null, Custom, 6, 321, 4096);
        Assert.Equal(i, RoundTrip(i));
    }

    [Fact]
    public void AskRequest_round_trips()
    {
        var a = new AskRequest("question?", 12, Custom);
        Assert.Equal(a, RoundTrip(a));
        Assert.Equal(new AskRequest("q"), RoundTrip(new AskRequest("q")));
    }

    [Fact]
    public void TokenChunk_and_stats_round_trip()
    {
        var plain = new TokenChunk("piece");
        Assert.Equal(plain, RoundTrip(plain));
        Assert.False(RoundTrip(plain).IsFinal);

        var stats = new GenerationStats(100, 20, TimeSpan.FromMilliseconds(123.5), TimeSpan.FromSeconds(2.25), FinishReason.ContextFull);
        var last = new TokenChunk("", stats);
        var back = RoundTrip(last);
        Assert.Equal(last, back);
        Assert.True(back.IsFinal);
        Assert.Equal(TimeSpan.FromMilliseconds(123.5), back.Stats!.TimeToFirstToken);
    }

    [Fact]
    public void GenerateRequest_round_trips_token_ids()
    {
        var r = new GenerateRequest("/m", [1, 0, -1, int.MaxValue, 128000], Custom);
        var back = RoundTrip(r);
        Assert.Equal(r.ModelRef, back.ModelRef);
        Assert.Equal(r.PromptTokens, back.PromptTokens);
        Assert.Equal(r.Sampling, back.Sampling);
    }

    [Fact]
    public void ModelDescription_round_trips()
    {
        var m = new ModelDescription("/m", "meta-llama/Llama-3.2-1B", 131072);
        Assert.Equal(m, RoundTrip(m));
    }

    [Theory]
    [InlineData(FinishReason.EndOfSequence)]
    [InlineData(FinishReason.MaxTokens)]
    [InlineData(FinishReason.ContextFull)]
    public void FinishReason_round_trips(FinishReason r) => Assert.Equal(r, RoundTrip(r));

    [Fact]
    public void Summaries_prompt_prefixes_the_instruction_and_rejects_empty_documents()
    {
        Assert.Equal("Summarize the following document:\n\nbody", Summaries.Prompt("body"));
        var e = Assert.Throws<ArgumentException>(() => Summaries.Prompt("  \t\n", "notes.txt"));
        Assert.Contains("notes.txt", e.Message);
        Assert.Contains("empty", e.Message);
    }
}

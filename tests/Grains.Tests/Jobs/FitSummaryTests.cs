using Actors.Grains.Jobs;

namespace Actors.Grains.Tests.Jobs;

/// <summary>
/// A step's summary is cut to its token budget as the next step's prompt encodes it: the model generated at most that
/// many tokens, but text re-encodes longer when the tokens were not the tokenizer's own (the H100-free reproduction:
/// the tiny qwen2 fixture's reduce prompt came to 569 tokens in a 512-token context). CharModel encodes one token per
/// UTF-8 byte, so a cut inside a character decodes to U+FFFD, three bytes: longer than the cut.
/// </summary>
public class FitSummaryTests
{
    private static readonly CharModel Model = new(MakeModelDir(), new CharModelHooks());

    private static string MakeModelDir()
    {
        var dir = Path.Combine(Path.GetTempPath(), "actors-fit-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), """{"model_id": "fit", "context_length": 4096}""");
        return dir;
    }

    [Fact]
    public void A_summary_within_budget_is_kept_whole() =>
        Assert.Equal("héllo", SummarizationJobGrain.FitSummary("héllo", 6, Model));

    [Theory]
    [InlineData("ééé", 4, "éé")]     // 6 bytes: a cut on a character boundary
    [InlineData("ééé", 3, "é")]      // a cut inside the second é: its one U+FFFD (3 bytes) is dropped, not carried
    [InlineData("abc", 0, "")]
    public void A_long_summary_is_cut_to_what_encodes_within_budget(string summary, int budget, string expected)
    {
        var cut = SummarizationJobGrain.FitSummary(summary, budget, Model);
        Assert.Equal(expected, cut);
        Assert.True(Model.Encode(cut).Count <= budget);
    }

    [Fact]
    public void Text_that_is_all_replacement_characters_is_cut_not_emptied()
    {
        // A random model's bytes decode to U+FFFD runs; only the one a cut makes goes, the rest is the model's text.
        var summary = new string('�', 4); // 12 bytes
        var cut = SummarizationJobGrain.FitSummary(summary, 7, Model);
        Assert.Equal(new string('�', 2), cut);
    }
}

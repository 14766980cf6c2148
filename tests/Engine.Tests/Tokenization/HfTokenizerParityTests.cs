namespace Actors.Engine.Tests.Tokenization;

/// <summary>
/// Encode, decode and stream-decode against what Hugging Face tokenizers produced for the tokenizers in Data/
/// (three written by hand, two trained; see Data/make_cases.py).
/// </summary>
public sealed class HfTokenizerParityTests
{
    public static TheoryData<string> Names => new("bytelevel_hand", "sentencepiece_hand", "metaspace_hand", "bytelevel_trained", "sentencepiece_trained");

    [Theory]
    [MemberData(nameof(Names))]
    public void MatchesHuggingFaceCases(string name)
    {
        int count = CaseRunner.Check(Path.Combine(TokenizerTestFiles.DataDir, name));
        Assert.True(count >= 20);
    }
}

/// <summary>The project's tokenizer parity fixtures (tests/fixtures/tokenizers/&lt;name&gt;/), made by tools/reference.</summary>
public sealed class TokenizerFixtureTests
{
    [Fact]
    public void EveryFixtureMatchesHuggingFace()
    {
        string dir = TokenizerTestFiles.FixturesDir;
        Assert.True(Directory.Exists(dir),
            $"tokenizer fixtures are missing: expected {dir} with one folder per tokenizer (tokenizer.json, cases.json); " +
            "make them with tools/reference/make_fixtures.py");
        var names = Directory.GetDirectories(dir).OrderBy(d => d, StringComparer.Ordinal).ToArray();
        Assert.NotEmpty(names);
        foreach (var name in names) CaseRunner.Check(name);
    }
}

using Actors.Engine.Model;

namespace Actors.Engine.Tests.Model;

public class GenerationConfigTests
{
    [Fact]
    public void Absent_file_gives_transformers_defaults()
    {
        using var dir = new TempDir();
        var g = GenerationConfig.Load(dir.Path);
        Assert.Empty(g.EosTokenIds);
        Assert.Null(g.BosTokenId);
        Assert.False(g.DoSample);
        Assert.Equal(1f, g.Temperature);
        Assert.Equal(50, g.TopK);
        Assert.Equal(1f, g.TopP);
        Assert.Null(g.MaxNewTokens);
        Assert.Equal(1f, g.RepetitionPenalty);
        Assert.Equal(0f, g.ToSamplingParams(16).Temperature); // greedy
    }

    [Fact]
    public void Reads_fields()
    {
        using var dir = new TempDir();
        File.WriteAllText(Path.Combine(dir.Path, "generation_config.json"),
            "{\"bos_token_id\":1,\"eos_token_id\":[2,9],\"do_sample\":true,\"temperature\":0.6,\"top_k\":20,\"top_p\":0.9," +
            "\"max_new_tokens\":100,\"repetition_penalty\":1.1,\"pad_token_id\":null,\"transformers_version\":\"5.17\"}");
        var g = GenerationConfig.Load(dir.Path);
        Assert.Equal([2, 9], g.EosTokenIds);
        Assert.Equal(1, g.BosTokenId);
        Assert.Null(g.PadTokenId);
        Assert.True(g.DoSample);
        Assert.Equal(0.6f, g.Temperature);
        Assert.Equal(20, g.TopK);
        Assert.Equal(0.9f, g.TopP);
        Assert.Equal(100, g.MaxNewTokens);
        Assert.Equal(100, g.MaxNewTokensFor(30));
        Assert.Equal(1.1f, g.RepetitionPenalty);
        var sp = g.ToSamplingParams(8, seed: 3);
        Assert.Equal((0.6f, 20, 0.9f, 3UL, 8), (sp.Temperature, sp.TopK, sp.TopP, sp.Seed, sp.MaxNewTokens));
    }

    [Fact]
    public void Single_eos_and_max_length()
    {
        var g = GenerationConfig.Parse("{\"eos_token_id\":7,\"max_length\":50}", "g.json");
        Assert.Equal([7], g.EosTokenIds);
        Assert.Null(g.MaxNewTokens);
        Assert.Equal(20, g.MaxNewTokensFor(30));
        Assert.Equal(0, g.MaxNewTokensFor(60));
    }

    [Fact]
    public void Bad_values_are_named()
    {
        Assert.Equal("eos_token_id", Assert.Throws<ModelFormatException>(() => GenerationConfig.Parse("{\"eos_token_id\":\"x\"}", "g.json")).Field);
        Assert.Equal("top_p", Assert.Throws<ModelFormatException>(() => GenerationConfig.Parse("{\"top_p\":0}", "g.json")).Field);
        Assert.Equal("do_sample", Assert.Throws<ModelFormatException>(() => GenerationConfig.Parse("{\"do_sample\":1}", "g.json")).Field);
        var e = Assert.Throws<ModelFormatException>(() => GenerationConfig.Parse("{", "g.json"));
        Assert.Equal("g.json", e.File);
    }
}

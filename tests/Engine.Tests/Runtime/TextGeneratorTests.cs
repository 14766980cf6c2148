using Actors.Engine.Chat;
using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;

namespace Actors.Engine.Tests.Runtime;

/// <summary>The whole model directory path: tokenizer, chat template, generation config and engine together.</summary>
public class TextGeneratorTests
{
    private static string Qwen2 => FixtureModel.Find("qwen2") ?? throw new DirectoryNotFoundException("tests/fixtures/models/qwen2 is missing");

    [Fact]
    public async Task Chat_prompt_generates_the_same_tokens_as_the_engine_given_the_rendered_ids()
    {
        using var generator = TextGenerator.Load(Qwen2, new EngineOptions { Backend = Backend.Cpu, KvPages = 64 });
        var messages = new[] { new ChatMessage("user", "Summarize the cache page token attention layer.") };
        var ids = generator.EncodeChat(messages, addGenerationPrompt: true);

        // The rendering is the Qwen2.5 template's, and the ids are its plain encoding (no BOS added by us).
        string rendered = generator.RenderChat(messages, addGenerationPrompt: true);
        Assert.StartsWith("<|im_start|>system\nYou are Qwen", rendered);
        Assert.EndsWith("<|im_start|>assistant\n", rendered);
        Assert.Equal(generator.Encode(rendered), ids);
        Assert.DoesNotContain("<|im_start|>", generator.Decode(ids));

        var viaGenerator = new List<int>();
        await foreach (var t in generator.GenerateAsync(ids, SamplingParams.Greedy(12), TestContext.Current.CancellationToken))
            viaGenerator.Add(t);
        var viaEngine = new List<int>();
        await foreach (var t in generator.Engine.GenerateAsync(ids, SamplingParams.Greedy(12), generator.StopTokenIds, TestContext.Current.CancellationToken))
            viaEngine.Add(t);
        Assert.NotEmpty(viaGenerator);
        Assert.Equal(viaEngine, viaGenerator);
        Assert.DoesNotContain(viaGenerator, generator.StopTokenIds.Contains);

        // Streaming decode of the generated ids concatenates to the plain decode.
        var stream = generator.CreateStreamDecoder();
        string streamed = string.Concat(viaGenerator.Select(stream.Push)) + stream.Flush();
        Assert.Equal(generator.Decode(viaGenerator), streamed);
    }

    [Fact]
    public void Stop_tokens_come_from_generation_config()
    {
        using var generator = TextGenerator.Load(Qwen2, new EngineOptions { Backend = Backend.Cpu, KvPages = 16 });
        Assert.Equal(new HashSet<int>(GenerationConfig.Load(Qwen2).EosTokenIds), generator.StopTokenIds);
        Assert.Contains(generator.Encode("<|im_end|>")[0], generator.StopTokenIds);
    }

    [Fact]
    public void A_directory_without_a_tokenizer_is_refused_naming_the_file()
    {
        var dir = Directory.CreateTempSubdirectory("actors-notok-").FullName;
        try
        {
            foreach (var f in new[] { "config.json", "model.safetensors" })
                File.Copy(Path.Combine(Qwen2, f), Path.Combine(dir, f));
            var e = Assert.Throws<ModelFormatException>(() => TextGenerator.Load(dir));
            Assert.Contains("tokenizer.json", e.Message);
        }
        finally { Directory.Delete(dir, true); }
    }

    [Fact]
    public void A_missing_directory_is_refused_naming_it()
    {
        var e = Assert.Throws<DirectoryNotFoundException>(() => TextGenerator.Load("/nonexistent/model-dir"));
        Assert.Contains("/nonexistent/model-dir", e.Message);
    }
}

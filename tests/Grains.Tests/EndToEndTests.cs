using Actors.Abstractions;
using Actors.Client;
using Actors.Silo;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Actors.Grains.Tests;

/// <summary>The `actors` CLI against real silo hosts on loopback: in-process hosts, and the actors-silo program it starts.</summary>
public sealed class EndToEndTests : IAsyncDisposable
{
    private readonly ClusterHarness _h = new();

    public ValueTask DisposeAsync() => _h.DisposeAsync();

    private Dictionary<string, string?> Env() => new()
    {
        ["ACTORS_HOME"] = _h.DataDirectory,
        ["ACTORS_GATEWAY_PORT"] = _h.GatewayPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["ACTORS_SILO_PORT"] = _h.SiloPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["ACTORS_SILO_PATH"] = Path.Combine(_h.Root, "no-silo-here"),
    };

    private static async Task<(int Code, string Out, string Err)> Cli(Dictionary<string, string?> env, string stdin, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await ActorsCli.RunAsync(args, stdout, stderr, new StringReader(stdin), k => env.GetValueOrDefault(k));
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task Summarize_and_chat_through_the_gateway_and_continue_after_the_silo_restarts()
    {
        var model = _h.MakeModel("char-512", 512);
        var env = Env();
        var doc = Path.Combine(_h.Root, "doc.txt");
        File.WriteAllText(doc, "Actors keep state.");

        var host = await _h.StartSiloHostAsync();
        try
        {
            var (code, output, err) = await Cli(env, "", "summarize", doc, "--model", model, "--session", "sum-1");
            Assert.True(code == 0, err);
            Assert.Equal(CharModel.ExpectedAnswer(1, Summaries.Instruction + "Actors keep state."), output.TrimEnd('\n'));
            Assert.Contains("prompt tokens", err);

            (code, output, err) = await Cli(env, "", "chat", "--session", "c-1", "--model", model, "--message", "hello");
            Assert.True(code == 0, err);
            Assert.Equal("[1] olleh\n", output);

            // Lines of stdin are turns of the same session.
            (code, output, err) = await Cli(env, "ab\n\ncd\n", "chat", "--session", "c-1");
            Assert.True(code == 0, err);
            Assert.Equal("[2] ba\n[3] dc\n", output);
            Assert.Contains("continuing session 'c-1' (2 turns)", err);

            // A prompt beyond the context: one clear line, non-zero exit, nothing stored.
            (code, _, err) = await Cli(env, "", "chat", "--session", "c-1", "--message", new string('z', 600));
            Assert.Equal(1, code);
            Assert.Contains("context of 512 tokens", err);
            Assert.Single(err.Trim().Split('\n'), l => l.StartsWith("actors: error", StringComparison.Ordinal));

            (code, _, err) = await Cli(env, "", "chat", "--session", "c-2", "--model", Path.Combine(_h.Root, "empty-model"), "--message", "x");
            Assert.Equal(2, code);
            Assert.Contains("does not exist", err);
        }
        finally
        {
            await host.StopAsync(TestContext.Current.CancellationToken);
            host.Dispose();
        }

        host = await _h.StartSiloHostAsync();
        try
        {
            var (code, output, err) = await Cli(env, "", "chat", "--session", "c-1", "--message", "again");
            Assert.True(code == 0, err);
            Assert.Equal("[4] niaga\n", output);
        }
        finally
        {
            await host.StopAsync(TestContext.Current.CancellationToken);
            host.Dispose();
        }
    }

    [Fact]
    public async Task Cli_starts_the_silo_program_which_summarizes_with_the_real_engine_and_resumes_after_a_restart()
    {
        var env = Env();
        env["ACTORS_SILO_PATH"] = Path.Combine(AppContext.BaseDirectory, "actors-silo.dll");
        string model = RealModel();
        string doc = Path.Combine(_h.Root, "doc.md");
        File.WriteAllText(doc, "The keeper lit the lamp at sunset and trimmed the wick every few hours until sunrise.");
        const int maxTokens = 12;

        // What the engine gives for the same prompt in this process: the summary must be exactly this text.
        string expected;
        using (var generator = Actors.Engine.Runtime.TextGenerator.Load(model, new Actors.Engine.Runtime.EngineOptions { KvPages = 64 }))
        {
            var ids = generator.EncodeChat([new Actors.Engine.Chat.ChatMessage("user", Summaries.Prompt(File.ReadAllText(doc)))], addGenerationPrompt: true);
            var tokens = new List<int>();
            await foreach (var t in generator.GenerateAsync(ids, Actors.Engine.Sampling.SamplingParams.Greedy(maxTokens), TestContext.Current.CancellationToken))
                tokens.Add(t);
            expected = generator.Decode(tokens);
        }

        var launcher = new SiloLauncher(_h.GatewayPort, _h.DataDirectory, k => env.GetValueOrDefault(k), null);
        try
        {
            var (code, output, err) = await Cli(env, "", "summarize", doc, "--model", model, "--max-tokens", $"{maxTokens}", "--session", "doc-1");
            Assert.True(code == 0, err);
            Assert.Contains("starting the silo", err);
            Assert.Equal(expected + "\n", output);
            Assert.True(File.Exists(Path.Combine(_h.DataDirectory, "silo.pid")));

            // The next call reuses the running silo and continues the persisted session.
            (code, _, err) = await Cli(env, "", "chat", "--session", "doc-1", "--message", "Shorter, please.", "--max-tokens", "4");
            Assert.True(code == 0, err);
            Assert.DoesNotContain("starting the silo", err);
            Assert.Contains("continuing session 'doc-1' (2 turns)", err);

            (code, output, err) = await Cli(env, "", "silo", "stop");
            Assert.True(code == 0, err);
            Assert.Contains("silo stopped", output);
            Assert.False(await launcher.GatewayAnswersAsync(TestContext.Current.CancellationToken));

            // After the silo process is gone, a new one starts and the session still has every turn.
            (code, _, err) = await Cli(env, "", "chat", "--session", "doc-1", "--message", "Once more.", "--max-tokens", "4");
            Assert.True(code == 0, err);
            Assert.Contains("starting the silo", err);
            Assert.Contains("continuing session 'doc-1' (4 turns)", err);

            // Bad input reaches the user as one line and a non-zero exit, with nothing stored.
            File.WriteAllText(Path.Combine(_h.Root, "empty.md"), "  \n");
            (code, _, err) = await Cli(env, "", "summarize", Path.Combine(_h.Root, "empty.md"), "--model", model);
            Assert.Equal(2, code);
            Assert.Contains("is empty", err);
        }
        finally
        {
            await Cli(env, "", "silo", "stop");
            await launcher.StopAsync(CancellationToken.None);
        }
    }

    [Fact]
    public async Task A_corrupt_model_directory_is_one_clear_line_and_leaves_no_turn_behind()
    {
        // The fixture model with its weights file cut short: the engine's loader must name the file.
        string bad = Path.Combine(_h.Root, "truncated-model");
        Directory.CreateDirectory(bad);
        foreach (var f in Directory.GetFiles(RealModel()))
            File.Copy(f, Path.Combine(bad, Path.GetFileName(f)));
        var weights = Path.Combine(bad, "model.safetensors");
        using (var fs = File.OpenWrite(weights)) fs.SetLength(fs.Length / 2);
        var doc = Path.Combine(_h.Root, "doc.txt");
        File.WriteAllText(doc, "Actors keep state.");
        var env = Env();

        using var host = await _h.StartSiloHostAsync(dir => Actors.Engine.Runtime.TextGenerator.Load(dir));
        try
        {
            var (code, _, err) = await Cli(env, "", "summarize", doc, "--model", bad, "--session", "bad-1");
            Assert.Equal(1, code);
            Assert.Contains("model.safetensors", err);
            Assert.Single(err.Trim().Split('\n'), l => l.StartsWith("actors: error", StringComparison.Ordinal));

            var grains = host.Services.GetRequiredService<IGrainFactory>();
            Assert.Empty(await grains.GetGrain<IDocumentGrain>("bad-1").GetTurns());
        }
        finally
        {
            await host.StopAsync(TestContext.Current.CancellationToken);
        }
    }

    /// <summary>The tiny Qwen2 model made by tools/reference/make_fixtures.py (tokenizer and chat template included).</summary>
    private static string RealModel()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
            if (File.Exists(Path.Combine(d.FullName, "Actors.sln")))
                return Path.Combine(d.FullName, "tests", "fixtures", "models", "qwen2");
        throw new DirectoryNotFoundException("repository root (Actors.sln) not found above " + AppContext.BaseDirectory);
    }
}

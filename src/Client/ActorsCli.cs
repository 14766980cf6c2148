using System.CommandLine;
using System.Globalization;
using Actors.Abstractions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Actors.Client;

/// <summary>
/// The `actors` command line. Exit codes: 0 ok, 1 the silo or model reported an error, 2 bad input,
/// 3 no silo could be reached or started. Errors are one line on stderr: "actors: error: ...".
/// </summary>
public static class ActorsCli
{
    public const string ServiceId = "actors";
    public const string ClusterId = "actors";

    /// <summary>The model used when neither --model nor ACTORS_MODEL names one (downloaded on first use).</summary>
    public const string DefaultModel = "hf:Qwen/Qwen2.5-0.5B-Instruct";

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr, TextReader stdin, Func<string, string?> getEnv)
    {
        var gatewayPort = new Option<int>("--gateway-port")
        {
            Description = "Gateway port of the local silo (env ACTORS_GATEWAY_PORT, default 30000)",
            Recursive = true,
            DefaultValueFactory = _ => int.TryParse(getEnv("ACTORS_GATEWAY_PORT"), NumberStyles.None, CultureInfo.InvariantCulture, out var p) ? p : SiloLauncher.DefaultGatewayPort,
        };
        var model = new Option<string?>("--model") { Description = $"Model directory or hf:ORG/NAME[@REVISION] (env ACTORS_MODEL; default {DefaultModel})" };
        var maxTokens = new Option<int?>("--max-tokens") { Description = "Most tokens to generate per answer" };
        var session = new Option<string?>("--session") { Description = "Session id; a session persists and can be continued later" };
        var system = new Option<string?>("--system") { Description = "System prompt for a new session" };
        var file = new Argument<FileInfo>("FILE") { Description = "Text file to summarize" };
        var message = new Option<string?>("--message") { Description = "One message to send; without it, each line of stdin is a message" };

        var root = new RootCommand("Actors: long-document LLM serving on Orleans");
        root.Options.Add(gatewayPort);

        var summarize = new Command("summarize", "Summarize a text file, printing the summary as it streams");
        summarize.Arguments.Add(file);
        summarize.Options.Add(model);
        summarize.Options.Add(maxTokens);
        summarize.Options.Add(session);
        summarize.SetAction((pr, ct) => Guard(stderr, async () =>
        {
            var path = pr.GetValue(file)!;
            if (!path.Exists) throw new CliException($"file '{path.FullName}' not found");
            var text = await File.ReadAllTextAsync(path.FullName, ct);
            string prompt;
            try { prompt = Summaries.Prompt(text, path.FullName); }
            catch (ArgumentException e) { throw new CliException(TrimParam(e)); }
            var modelRef = pr.GetValue(model) ?? getEnv("ACTORS_MODEL") ?? DefaultModel;
            var resolved = await ModelResolver.ResolveAsync(modelRef, stderr, getEnv, ct);
            var id = pr.GetValue(session) ?? "summarize-" + Guid.NewGuid().ToString("N");
            var max = pr.GetValue(maxTokens);

            await using var connection = await Connect(pr.GetValue(gatewayPort), getEnv, stderr, ct);
            var grain = connection.Client.GetGrain<IDocumentGrain>(id);
            await grain.Open(new OpenSession(resolved, Sampling: max is { } m ? SamplingOptions.Greedy(m) : null));
            await Stream(grain, new AskRequest(prompt, max), stdout, stderr, ct);
        }));

        var chat = new Command("chat", "Chat in a persisted session; continues it when it exists");
        var chatSession = new Option<string>("--session") { Description = "Session id (required)", Required = true };
        chat.Options.Add(chatSession);
        chat.Options.Add(model);
        chat.Options.Add(system);
        chat.Options.Add(message);
        chat.Options.Add(maxTokens);
        chat.SetAction((pr, ct) => Guard(stderr, async () =>
        {
            var modelRef = pr.GetValue(model) ?? getEnv("ACTORS_MODEL");
            var max = pr.GetValue(maxTokens);
            await using var connection = await Connect(pr.GetValue(gatewayPort), getEnv, stderr, ct);
            var grain = connection.Client.GetGrain<IDocumentGrain>(pr.GetValue(chatSession)!);
            // A new session without --model gets the default model; an existing one keeps its own.
            if (modelRef is null && !(await grain.GetInfo()).IsOpen) modelRef = DefaultModel;
            var resolved = modelRef is null ? null : await ModelResolver.ResolveAsync(modelRef, stderr, getEnv, ct);
            var info = await grain.Open(new OpenSession(resolved, pr.GetValue(system)));
            if (info.TurnCount > 0) stderr.WriteLine($"continuing session '{info.SessionId}' ({info.TurnCount} turns)");

            if (pr.GetValue(message) is { } one)
            {
                await Stream(grain, new AskRequest(one, max), stdout, stderr, ct);
                return;
            }
            while (await stdin.ReadLineAsync(ct) is { } line)
            {
                if (string.IsNullOrWhiteSpace(line)) continue;
                await Stream(grain, new AskRequest(line, max), stdout, stderr, ct);
            }
        }));

        var silo = new Command("silo", "Manage the local silo");
        var start = new Command("start", "Start the local silo when none answers");
        start.SetAction((pr, ct) => Guard(stderr, async () =>
        {
            var launcher = Launcher(pr.GetValue(gatewayPort), getEnv, stderr);
            await launcher.EnsureRunningAsync(ct);
            stdout.WriteLine($"silo answers on gateway port {pr.GetValue(gatewayPort)}");
        }));
        var stop = new Command("stop", "Stop the local silo started from this data directory");
        stop.SetAction((pr, ct) => Guard(stderr, async () =>
        {
            var stopped = await Launcher(pr.GetValue(gatewayPort), getEnv, stderr).StopAsync(ct);
            stdout.WriteLine(stopped ? "silo stopped" : "no silo running from this data directory");
        }));
        silo.Subcommands.Add(start);
        silo.Subcommands.Add(stop);

        root.Subcommands.Add(summarize);
        root.Subcommands.Add(chat);
        root.Subcommands.Add(silo);

        var parsed = root.Parse(args);
        return await parsed.InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr });
    }

    private static SiloLauncher Launcher(int port, Func<string, string?> getEnv, TextWriter stderr) =>
        new(port, SiloLauncher.DefaultDataDirectory(getEnv), getEnv, stderr);

    private static async Task Stream(IDocumentGrain grain, AskRequest request, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        await foreach (var chunk in grain.Ask(request, ct))
        {
            stdout.Write(chunk.Text);
            stdout.Flush();
            if (chunk.Stats is { } s)
            {
                stdout.WriteLine();
                var rate = s.GeneratedTokens > 1 && s.Elapsed > s.TimeToFirstToken
                    ? (s.GeneratedTokens - 1) / (s.Elapsed - s.TimeToFirstToken).TotalSeconds : 0;
                stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"[{s.PromptTokens} prompt tokens, {s.GeneratedTokens} generated, first token {s.TimeToFirstToken.TotalMilliseconds:F0} ms, {rate:F1} tokens/s, {s.FinishReason}]"));
            }
        }
    }

    private sealed class Connection(IHost host) : IAsyncDisposable
    {
        public IClusterClient Client { get; } = host.Services.GetRequiredService<IClusterClient>();

        public async ValueTask DisposeAsync()
        {
            try { await host.StopAsync(TimeSpan.FromSeconds(5)); } catch (Exception) { /* the answer is already out */ }
            host.Dispose();
        }
    }

    private static async Task<Connection> Connect(int gatewayPort, Func<string, string?> getEnv, TextWriter stderr, CancellationToken ct)
    {
        await Launcher(gatewayPort, getEnv, stderr).EnsureRunningAsync(ct);
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Logging.ClearProviders();
        builder.UseOrleansClient(c => c.UseLocalhostClustering(gatewayPort, ServiceId, ClusterId));
        var host = builder.Build();
        try
        {
            await host.StartAsync(ct);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            host.Dispose();
            throw new CliException($"cannot connect to the silo gateway on port {gatewayPort}: {e.Message}", CliException.NoSilo);
        }
        return new Connection(host);
    }

    private static async Task<int> Guard(TextWriter stderr, Func<Task> action)
    {
        try
        {
            await action();
            return 0;
        }
        catch (CliException e)
        {
            stderr.WriteLine($"actors: error: {OneLine(e.Message)}");
            return e.ExitCode;
        }
        catch (OperationCanceledException)
        {
            stderr.WriteLine("actors: cancelled");
            return 130;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or InvalidDataException or IOException)
        {
            // Errors reported by the silo (bad model directory, prompt too long, empty message) and by the file system.
            stderr.WriteLine($"actors: error: {OneLine(e is ArgumentException a ? TrimParam(a) : e.Message)}");
            return 1;
        }
        catch (Exception e)
        {
            stderr.WriteLine($"actors: error: {e.GetType().Name}: {OneLine(e.Message)}");
            return 1;
        }
    }

    private static string TrimParam(ArgumentException e) =>
        e.ParamName is { } p ? e.Message.Replace($" (Parameter '{p}')", "", StringComparison.Ordinal) : e.Message;

    private static string OneLine(string s) => s.ReplaceLineEndings(" ").Trim();
}

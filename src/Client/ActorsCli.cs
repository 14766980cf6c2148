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

        var words = new Option<int?>("--words") { Description = $"Summary length in words (default {SummaryOptions.DefaultTargetWords})" };
        var style = new Option<string?>("--style") { Description = "abstract (prose, the default) or bullets" };
        var language = new Option<string?>("--language") { Description = "Language to write the summary in (default: the document's)" };
        var focus = new Option<string?>("--focus") { Description = "A question the summary should answer" };
        var chunkTokens = new Option<int?>("--chunk-tokens") { Description = "Map-reduce chunk size in tokens (default: sized from the model's context)" };
        var overlapTokens = new Option<int?>("--overlap-tokens") { Description = $"Tokens each chunk repeats from the previous one (default {SummaryOptions.DefaultOverlapTokens})" };
        var force = new Option<bool>("--force") { Description = "Start a new job even when this document was summarized with these options before" };
        var noProgress = new Option<bool>("--no-progress") { Description = "Do not draw the progress bar" };

        var summarize = new Command("summarize",
            "Summarize a text file as a summarization job (direct or map-reduce over the cluster), with a progress bar on stderr " +
            "and the summary on stdout. With --session, summarize in one turn of that chat session instead (no job), to continue it with `actors chat`.");
        summarize.Arguments.Add(file);
        summarize.Options.Add(model);
        summarize.Options.Add(maxTokens);
        summarize.Options.Add(session);
        summarize.Options.Add(words);
        summarize.Options.Add(style);
        summarize.Options.Add(language);
        summarize.Options.Add(focus);
        summarize.Options.Add(chunkTokens);
        summarize.Options.Add(overlapTokens);
        summarize.Options.Add(force);
        summarize.Options.Add(noProgress);
        summarize.SetAction((pr, ct) => Guard(stderr, async () =>
        {
            var path = pr.GetValue(file)!;
            if (!path.Exists) throw new CliException($"file '{path.FullName}' not found");
            var text = await File.ReadAllTextAsync(path.FullName, ct);
            string prompt;
            try { prompt = Summaries.Prompt(text, path.FullName); }
            catch (ArgumentException e) { throw new CliException(TrimParam(e)); }
            SummaryOptions? options = null;
            if (pr.GetValue(session) is null)
            {
                try
                {
                    var styleValue = pr.GetValue(style)?.ToLowerInvariant() switch
                    {
                        null or "abstract" => SummaryStyle.Abstract,
                        "bullets" => SummaryStyle.Bullets,
                        var other => throw new ArgumentException($"--style must be abstract or bullets, got '{other}'"),
                    };
                    options = new SummaryOptions(pr.GetValue(words) ?? SummaryOptions.DefaultTargetWords, styleValue, pr.GetValue(language),
                        pr.GetValue(focus), pr.GetValue(chunkTokens), pr.GetValue(overlapTokens) ?? SummaryOptions.DefaultOverlapTokens).Validate();
                }
                catch (ArgumentException e) { throw new CliException(TrimParam(e)); }
            }
            var modelRef = pr.GetValue(model) ?? getEnv("ACTORS_MODEL") ?? DefaultModel;
            var resolved = await ModelResolver.ResolveAsync(modelRef, stderr, getEnv, ct);
            var max = pr.GetValue(maxTokens);

            await using var connection = await Connect(pr.GetValue(gatewayPort), getEnv, stderr, ct);
            if (options is null)
            {
                var grain = connection.Client.GetGrain<IDocumentGrain>(pr.GetValue(session)!);
                await grain.Open(new OpenSession(resolved, Sampling: max is { } m ? SamplingOptions.Greedy(m) : null));
                await Stream(grain, new AskRequest(prompt, max), stdout, stderr, ct);
                return;
            }
            // The file's bytes: the job's silo ingests them (text, Markdown, HTML, PDF, DOCX) and stores them once by hash.
            var bytes = await File.ReadAllBytesAsync(path.FullName, ct);
            var request = new SubmitJob(resolved, options, Force: pr.GetValue(force), Source: path.Name, Content: bytes);
            await RunJob(connection.Client, request, pr.GetValue(noProgress) ? null : stderr, stdout, stderr, ct);
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

        var job = new Command("job", "Look at or cancel a summarization job");
        var jobId = new Argument<string>("JOB") { Description = "Job id (printed by `actors summarize`)" };
        var status = new Command("status", "Print a job's progress; with --wait, follow it to the end and print the summary");
        var wait = new Option<bool>("--wait") { Description = "Follow the job with a progress bar until it ends, then print the summary" };
        status.Arguments.Add(jobId);
        status.Options.Add(wait);
        status.SetAction((pr, ct) => Guard(stderr, async () =>
        {
            await using var connection = await Connect(pr.GetValue(gatewayPort), getEnv, stderr, ct);
            var grain = connection.Client.GetGrain<ISummarizationJobGrain>(ParseJob(pr.GetValue(jobId)!));
            var info = await grain.GetInfo();
            if (info.ModelRef.Length == 0) throw new CliException($"no job '{info.JobId}'");
            if (pr.GetValue(wait))
            {
                await Follow(connection.Client, info.JobId, stderr, stdout, stderr, ct);
                return;
            }
            stdout.WriteLine(JobProgressBar.Render(await grain.GetProgress()));
        }));
        var cancel = new Command("cancel", "Cancel a job: its running steps stop");
        cancel.Arguments.Add(jobId);
        cancel.SetAction((pr, ct) => Guard(stderr, async () =>
        {
            await using var connection = await Connect(pr.GetValue(gatewayPort), getEnv, stderr, ct);
            var grain = connection.Client.GetGrain<ISummarizationJobGrain>(ParseJob(pr.GetValue(jobId)!));
            if ((await grain.GetInfo()).ModelRef.Length == 0) throw new CliException($"no job '{pr.GetValue(jobId)}'");
            var info = await grain.Cancel();
            stdout.WriteLine($"job {info.JobId}: {info.Status.ToString().ToLowerInvariant()}");
        }));
        job.Subcommands.Add(status);
        job.Subcommands.Add(cancel);

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
        root.Subcommands.Add(job);
        root.Subcommands.Add(silo);

        var parsed = root.Parse(args);
        return await parsed.InvokeAsync(new InvocationConfiguration { Output = stdout, Error = stderr });
    }

    private static SiloLauncher Launcher(int port, Func<string, string?> getEnv, TextWriter stderr) =>
        new(port, SiloLauncher.DefaultDataDirectory(getEnv), getEnv, stderr);

    private static string ParseJob(string id)
    {
        try { SummarizationJobs.ParseJobId(id); }
        catch (ArgumentException e) { throw new CliException(TrimParam(e)); }
        return id;
    }

    /// <summary>Submits the job (or finds the existing one), follows it with the progress bar, prints the summary.</summary>
    private static async Task RunJob(IClusterClient client, SubmitJob request, TextWriter? progress, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        JobInfo info;
        try { info = await SummarizationJobs.SubmitAsync(client, request); }
        catch (ArgumentException e) { throw new CliException(TrimParam(e)); }
        stderr.WriteLine(info.Status is JobStatus.Pending
            ? $"job {info.JobId} submitted"
            : $"job {info.JobId} exists ({info.Status.ToString().ToLowerInvariant()}); --force starts a new one");
        await Follow(client, info.JobId, progress, stdout, stderr, ct);
    }

    /// <summary>
    /// Draws the job's progress until it ends, then prints the summary (stdout) and its numbers (stderr). Ctrl+C stops
    /// following; the job goes on in the cluster.
    /// </summary>
    private static async Task Follow(IGrainFactory grains, string jobId, TextWriter? progress, TextWriter stdout, TextWriter stderr, CancellationToken ct)
    {
        var job = grains.GetGrain<ISummarizationJobGrain>(jobId);
        var bar = new JobProgressBar(progress);
        JobProgress? last = null;
        // Survives the job's silo dying: the watch is opened again and the job resumes elsewhere.
        await foreach (var p in SummarizationJobs.FollowAsync(grains, jobId, cancellationToken: ct))
        {
            last = p;
            bar.Update(p);
        }
        bar.Finish();
        var result = await job.GetResult();
        switch (result.Status)
        {
            case JobStatus.Succeeded:
                stdout.WriteLine(result.Summary);
                stdout.Flush();
                stderr.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"[{result.Steps.Count} steps, {last?.TokensProcessed ?? 0} tokens in {JobProgressBar.Clock(last?.Elapsed ?? TimeSpan.Zero)}, {last?.TokensPerSecond ?? 0:F1} tokens/s; ask more: actors chat --session {result.FollowUpSessionId}]"));
                break;
            case JobStatus.Cancelled:
                throw new CliException($"job {result.JobId} was cancelled", 1);
            default:
                throw new CliException($"job {result.JobId} failed: {result.Error}", 1);
        }
    }

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

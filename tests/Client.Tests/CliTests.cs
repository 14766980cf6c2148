namespace Actors.Client.Tests;

/// <summary>Input errors are caught before any silo is contacted: one line on stderr and a non-zero exit code.</summary>
public sealed class CliTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "actors-cli-" + Guid.NewGuid().ToString("N"));

    public CliTests() => Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private async Task<(int Code, string Out, string Err)> Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        // A gateway port nothing listens on and no silo to start: a test that got past input checks would fail with code 3.
        // Offline with an empty Hugging Face cache, so the default model is looked up without any network.
        var env = new Dictionary<string, string?>
        {
            ["ACTORS_HOME"] = _dir, ["ACTORS_GATEWAY_PORT"] = "1", ["ACTORS_SILO_PATH"] = Path.Combine(_dir, "none"),
            ["HF_HOME"] = Path.Combine(_dir, "hf"), ["HF_HUB_OFFLINE"] = "1",
        };
        var code = await ActorsCli.RunAsync(args, stdout, stderr, new StringReader(""), k => env.GetValueOrDefault(k));
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public async Task Missing_file()
    {
        var (code, _, err) = await Run("summarize", Path.Combine(_dir, "absent.txt"), "--model", _dir);
        Assert.Equal(2, code);
        Assert.Contains("absent.txt' not found", err);
        Assert.Single(err.TrimEnd().Split('\n'));
    }

    [Fact]
    public async Task Empty_document()
    {
        var file = Path.Combine(_dir, "empty.txt");
        File.WriteAllText(file, "  \n\t");
        var (code, _, err) = await Run("summarize", file, "--model", _dir);
        Assert.Equal(2, code);
        Assert.Contains("empty.txt' is empty", err);
    }

    [Fact]
    public async Task Missing_model_directory_and_default_model_not_cached_offline()
    {
        var file = Path.Combine(_dir, "doc.txt");
        File.WriteAllText(file, "text");
        var (code, _, err) = await Run("summarize", file, "--model", Path.Combine(_dir, "no-model"));
        Assert.Equal(2, code);
        Assert.Contains("model directory", err);
        Assert.Contains("no-model", err);

        // Without --model the default model is used; offline and not cached, the error names it.
        (code, _, err) = await Run("summarize", file);
        Assert.NotEqual(0, code);
        Assert.Contains("Qwen/Qwen2.5-0.5B-Instruct", err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Fact]
    public async Task No_silo_to_start_is_explained()
    {
        var file = Path.Combine(_dir, "doc.txt");
        File.WriteAllText(file, "text");
        var (code, _, err) = await Run("summarize", file, "--model", _dir);
        Assert.Equal(3, code);
        Assert.Contains("ACTORS_SILO_PATH", err);
    }

    [Fact]
    public async Task Chat_requires_a_session()
    {
        var (code, _, err) = await Run("chat", "--message", "hi");
        Assert.NotEqual(0, code);
        Assert.Contains("--session", err);
    }
}

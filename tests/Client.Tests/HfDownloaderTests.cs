using System.Text;
using Actors.Client.HuggingFace;

namespace Actors.Client.Tests;

public sealed class HfDownloaderTests : IDisposable
{
    private const string Repo = "tiny-org/tiny-llama";
    private readonly FakeHub _hub = new();
    private readonly string _home = Path.Combine(Path.GetTempPath(), "actors-hf-" + Guid.NewGuid().ToString("N"));
    private readonly Dictionary<string, byte[]> _files;

    public HfDownloaderTests()
    {
        var weights = new byte[300_000];
        new Random(7).NextBytes(weights);
        _files = new Dictionary<string, byte[]>
        {
            ["config.json"] = Encoding.UTF8.GetBytes("""{"model_type":"llama","hidden_size":64}"""),
            ["generation_config.json"] = Encoding.UTF8.GetBytes("""{"eos_token_id":2}"""),
            ["tokenizer.json"] = Encoding.UTF8.GetBytes("""{"model":{"type":"BPE"}}"""),
            ["tokenizer_config.json"] = Encoding.UTF8.GetBytes("""{"bos_token":"<s>"}"""),
            ["model.safetensors"] = weights,
            ["README.md"] = Encoding.UTF8.GetBytes("# not needed"),
            ["pytorch_model.bin"] = new byte[1000],
            ["onnx/model.onnx"] = new byte[10],
        };
        _hub.AddRepo(Repo, _files);
    }

    public void Dispose()
    {
        _hub.Dispose();
        try { Directory.Delete(_home, recursive: true); } catch (IOException) { }
    }

    private HfHubOptions Options(bool offline = false) =>
        HfHubOptions.FromEnvironment(name => name switch
        {
            "HF_HOME" => _home,
            "HF_ENDPOINT" => _hub.Endpoint,
            "HF_HUB_OFFLINE" => offline ? "1" : null,
            _ => null,
        });

    private async Task<string> Download(string modelRef = "hf:" + Repo, bool offline = false, TextWriter? progress = null)
    {
        using var d = new HfDownloader(Options(offline), progress);
        return await d.DownloadAsync(HfModelRef.Parse(modelRef), TestContext.Current.CancellationToken);
    }

    private string RepoDir => Path.Combine(_home, "hub", "models--tiny-org--tiny-llama");

    [Fact]
    public async Task Downloads_the_model_files_into_the_hugging_face_cache_layout()
    {
        var progress = new StringWriter();
        var snapshot = await Download(progress: progress);

        Assert.Equal(Path.Combine(RepoDir, "snapshots", FakeHub.Commit), snapshot);
        Assert.Equal(FakeHub.Commit, File.ReadAllText(Path.Combine(RepoDir, "refs", "main")));
        var expected = new[] { "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" };
        Assert.Equal(expected, Directory.GetFiles(snapshot).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        foreach (var name in expected)
        {
            var path = Path.Combine(snapshot, name);
            Assert.Equal(_files[name], File.ReadAllBytes(path));
            // Snapshot entries point at blobs named by ETag: sha256 for LFS files, the git blob sha1 otherwise.
            var etag = FakeHub.IsLfs(name) ? FakeHub.Sha256(_files[name]) : FakeHub.GitSha(_files[name]);
            var blob = Path.Combine(RepoDir, "blobs", etag);
            Assert.Equal(_files[name], File.ReadAllBytes(blob));
            var link = new FileInfo(path).LinkTarget;
            Assert.NotNull(link);
            Assert.Equal(Path.GetFullPath(blob), Path.GetFullPath(Path.Combine(snapshot, link)));
        }
        Assert.Empty(Directory.GetFiles(Path.Combine(RepoDir, "blobs"), "*.incomplete"));
        Assert.DoesNotContain(_hub.Requests, r => r.Contains("README", StringComparison.Ordinal) || r.Contains("pytorch_model", StringComparison.Ordinal) || r.Contains("onnx", StringComparison.Ordinal));
        Assert.Contains("model.safetensors:", progress.ToString());
        Assert.Contains("100.0%", progress.ToString());
    }

    [Fact]
    public async Task Second_run_reuses_the_cache_without_file_requests()
    {
        var first = await Download();
        var before = _hub.FileRequests;
        Assert.True(before >= 5);
        var second = await Download();
        Assert.Equal(first, second);
        Assert.Equal(before, _hub.FileRequests);
    }

    [Fact]
    public async Task Existing_blobs_are_linked_not_downloaded_again()
    {
        // As when another revision already brought the same weights into the cache.
        var blobs = Path.Combine(RepoDir, "blobs");
        Directory.CreateDirectory(blobs);
        File.WriteAllBytes(Path.Combine(blobs, FakeHub.Sha256(_files["model.safetensors"])), _files["model.safetensors"]);
        var snapshot = await Download();
        Assert.Equal(_files["model.safetensors"], File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        Assert.DoesNotContain(_hub.Requests, r => r.StartsWith("GET /cdn/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task An_interrupted_download_resumes_with_a_range_request()
    {
        _hub.CutOnce = ("model.safetensors", 100_000);
        var snapshot = await Download();

        Assert.Equal(_files["model.safetensors"], File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        var cdn = _hub.Requests.Where(r => r.StartsWith("GET /cdn/", StringComparison.Ordinal)).ToList();
        Assert.Equal(2, cdn.Count);
        Assert.DoesNotContain("bytes=", cdn[0]);
        // The resume asks only for what did not arrive (the client may have received fewer bytes than were sent).
        var from = int.Parse(cdn[1][(cdn[1].IndexOf("bytes=", StringComparison.Ordinal) + 6)..^1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(from, 1, 100_000);
    }

    [Fact]
    public async Task A_partial_file_left_by_an_earlier_process_is_resumed()
    {
        var blobs = Path.Combine(RepoDir, "blobs");
        Directory.CreateDirectory(blobs);
        var sha = FakeHub.Sha256(_files["model.safetensors"]);
        File.WriteAllBytes(Path.Combine(blobs, sha + ".incomplete"), _files["model.safetensors"][..123_456]);
        var snapshot = await Download();
        Assert.Equal(_files["model.safetensors"], File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
        Assert.Contains(_hub.Requests, r => r == $"GET /cdn/{sha} bytes=123456-");
    }

    [Fact]
    public async Task A_corrupt_partial_file_fails_the_checksum_and_is_removed()
    {
        var blobs = Path.Combine(RepoDir, "blobs");
        Directory.CreateDirectory(blobs);
        var sha = FakeHub.Sha256(_files["model.safetensors"]);
        var wrong = _files["model.safetensors"][..1000].ToArray();
        wrong[10] ^= 0xFF;
        File.WriteAllBytes(Path.Combine(blobs, sha + ".incomplete"), wrong);
        var e = await Assert.ThrowsAsync<HfDownloadException>(() => Download());
        Assert.Contains("sha256", e.Message);
        Assert.False(File.Exists(Path.Combine(blobs, sha + ".incomplete")));
        // The next run starts over and succeeds.
        var snapshot = await Download();
        Assert.Equal(_files["model.safetensors"], File.ReadAllBytes(Path.Combine(snapshot, "model.safetensors")));
    }

    [Fact]
    public async Task Missing_repository_is_a_clear_error()
    {
        var e = await Assert.ThrowsAsync<HfDownloadException>(() => Download("hf:nobody/nothing"));
        Assert.Contains("hf:nobody/nothing@main", e.Message);
        Assert.Contains("404", e.Message);
    }

    [Fact]
    public async Task Token_is_sent_as_bearer_and_its_absence_is_explained()
    {
        _hub.RequiredToken = "secret";
        var e = await Assert.ThrowsAsync<HfDownloadException>(() => Download());
        Assert.Contains("HF_TOKEN", e.Message);

        var options = Options();
        options.Token = "secret";
        using var d = new HfDownloader(options);
        var snapshot = await d.DownloadAsync(HfModelRef.Parse("hf:" + Repo), TestContext.Current.CancellationToken);
        Assert.True(File.Exists(Path.Combine(snapshot, "model.safetensors")));
    }

    [Fact]
    public async Task Offline_mode_uses_the_cache_only()
    {
        var e = await Assert.ThrowsAsync<HfDownloadException>(() => Download(offline: true));
        Assert.Contains("HF_HUB_OFFLINE", e.Message);
        Assert.Empty(_hub.Requests);

        var online = await Download();
        var count = _hub.Requests.Count;
        Assert.Equal(online, await Download(offline: true));
        Assert.Equal(online, await Download($"hf:{Repo}@{FakeHub.Commit}", offline: true));
        Assert.Equal(count, _hub.Requests.Count);
    }

    [Fact]
    public async Task A_repository_without_safetensors_is_refused()
    {
        _hub.AddRepo("old/bin-only", new Dictionary<string, byte[]> { ["config.json"] = [1], ["pytorch_model.bin"] = [2] });
        var e = await Assert.ThrowsAsync<HfDownloadException>(() => Download("hf:old/bin-only"));
        Assert.Contains("safetensors", e.Message);
    }

    [Theory]
    [InlineData("hf:org/name", "org/name", "main")]
    [InlineData("hf:Qwen/Qwen2.5-0.5B-Instruct@v1.0", "Qwen/Qwen2.5-0.5B-Instruct", "v1.0")]
    [InlineData("hf:meta-llama/Llama-3.2-1B@refs/pr/1", "meta-llama/Llama-3.2-1B", "refs/pr/1")]
    public void Model_refs_parse(string text, string repo, string revision) =>
        Assert.Equal(new HfModelRef(repo, revision), HfModelRef.Parse(text));

    [Theory]
    [InlineData("hf:noslash")]
    [InlineData("hf:a/b/c")]
    [InlineData("hf:../x")]
    [InlineData("hf:org/name@")]
    [InlineData("hf:org/na me")]
    public void Bad_model_refs_are_rejected(string text) =>
        Assert.Contains(text, Assert.Throws<ArgumentException>(() => HfModelRef.Parse(text)).Message);

    [Fact]
    public void Environment_is_read_like_huggingface_hub()
    {
        var o = HfHubOptions.FromEnvironment(k => k switch { "HF_HUB_CACHE" => "/c", "HF_HOME" => "/h", "HF_ENDPOINT" => "http://x/", "HF_TOKEN" => "t", "HF_HUB_OFFLINE" => "true", _ => null });
        Assert.Equal("/c", o.CacheDirectory);
        Assert.Equal("http://x", o.Endpoint);
        Assert.Equal("t", o.Token);
        Assert.True(o.Offline);
        var d = HfHubOptions.FromEnvironment(_ => null);
        Assert.Equal(HfHubOptions.DefaultEndpoint, d.Endpoint);
        Assert.EndsWith(Path.Combine(".cache", "huggingface", "hub"), d.CacheDirectory);
        Assert.False(d.Offline);
        Assert.Null(d.Token);
    }
}

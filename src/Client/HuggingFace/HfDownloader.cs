using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;

namespace Actors.Client.HuggingFace;

/// <summary>
/// Fetches a model's files into the standard Hugging Face cache layout, so files the user already has (from Python
/// or an earlier run) are reused:
/// <code>
/// {cache}/models--ORG--NAME/blobs/{etag}                 file contents, named by ETag (sha256 for LFS files)
/// {cache}/models--ORG--NAME/snapshots/{commit}/{file}    symlink to ../../blobs/{etag} (a copy where links fail)
/// {cache}/models--ORG--NAME/refs/{revision}              the commit a branch or tag named last time
/// </code>
/// A transfer in progress lives in blobs/{etag}.incomplete and is resumed with an HTTP Range request.
/// </summary>
public sealed class HfDownloader : IDisposable
{
    /// <summary>Which repository files a model directory needs (ARCHITECTURE.md §5).</summary>
    public static bool IsWanted(string file)
    {
        var name = file.Contains('/') ? file[(file.LastIndexOf('/') + 1)..] : file;
        if (file.Contains('/')) return false; // weights and configs live at the top level; subfolders hold other formats
        return name is "config.json" or "generation_config.json" or "tokenizer.json" or "tokenizer_config.json" or "model.safetensors.index.json"
            || name.EndsWith(".safetensors", StringComparison.Ordinal);
    }

    private readonly HfHubOptions _options;
    private readonly TextWriter? _progress;
    private readonly HttpClient _http;

    public HfDownloader(HfHubOptions options, TextWriter? progress = null, HttpMessageHandler? handler = null)
    {
        _options = options;
        _progress = progress;
        // Redirects are followed by hand: the hub answers LFS files with a redirect whose headers carry the ETag and
        // size, and the token must not follow the client to another host.
        _http = new HttpClient(handler ?? new SocketsHttpHandler { AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None }, disposeHandler: handler is null)
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("actors/1.0");
    }

    public void Dispose() => _http.Dispose();

    private string RepoDirectory(HfModelRef model) => Path.Combine(_options.CacheDirectory, model.CacheFolderName);

    /// <summary>Makes the model's files present in the cache and returns its snapshot directory.</summary>
    public async Task<string> DownloadAsync(HfModelRef model, CancellationToken cancellationToken = default)
    {
        if (_options.Offline)
            return CachedSnapshot(model) ?? throw new HfDownloadException(
                $"HF_HUB_OFFLINE is set and {model} is not in the cache '{RepoDirectory(model)}'");

        (string Sha, List<string> Files) info;
        try
        {
            info = await GetRepoInfoAsync(model, cancellationToken).ConfigureAwait(false);
        }
        catch (HttpRequestException e) when (CachedSnapshot(model) is { } cached)
        {
            _progress?.WriteLine($"warning: cannot reach {_options.Endpoint} ({e.Message}); using the cached snapshot of {model}");
            return cached;
        }

        var wanted = info.Files.Where(IsWanted).ToList();
        if (!wanted.Contains("config.json"))
            throw new HfDownloadException($"{model} has no config.json: not a transformers model repository");
        if (!wanted.Any(f => f.EndsWith(".safetensors", StringComparison.Ordinal)))
            throw new HfDownloadException($"{model} has no *.safetensors weights (other weight formats are not supported)");

        var repoDir = RepoDirectory(model);
        var snapshot = Path.Combine(repoDir, "snapshots", info.Sha);
        Directory.CreateDirectory(Path.Combine(repoDir, "blobs"));
        Directory.CreateDirectory(snapshot);
        if (!string.Equals(model.Revision, info.Sha, StringComparison.Ordinal))
        {
            var refFile = Path.Combine(repoDir, "refs", model.Revision);
            Directory.CreateDirectory(Path.GetDirectoryName(refFile)!);
            await File.WriteAllTextAsync(refFile, info.Sha, cancellationToken).ConfigureAwait(false);
        }

        foreach (var file in wanted)
        {
            var target = Path.Combine(snapshot, file);
            if (File.Exists(target)) continue; // follows the link: present only when its blob is
            await FetchFileAsync(model, info.Sha, file, repoDir, target, cancellationToken).ConfigureAwait(false);
        }
        return snapshot;
    }

    /// <summary>The cached snapshot for the model's revision, or null. A revision is a ref name or a commit.</summary>
    public string? CachedSnapshot(HfModelRef model)
    {
        var repoDir = RepoDirectory(model);
        var refFile = Path.Combine(repoDir, "refs", model.Revision);
        var commit = File.Exists(refFile) ? File.ReadAllText(refFile).Trim() : model.Revision;
        var snapshot = Path.Combine(repoDir, "snapshots", commit);
        return File.Exists(Path.Combine(snapshot, "config.json")) ? snapshot : null;
    }

    private async Task<(string Sha, List<string> Files)> GetRepoInfoAsync(HfModelRef model, CancellationToken ct)
    {
        var url = $"{_options.Endpoint}/api/models/{model.Repo}/revision/{Uri.EscapeDataString(model.Revision)}";
        using var response = await SendAsync(HttpMethod.Get, url, null, ct).ConfigureAwait(false);
        Check(response, model, $"repository information ({url})");
        var body = await response.Content.ReadAsByteArrayAsync(ct).ConfigureAwait(false);
        try
        {
            using var doc = JsonDocument.Parse(body);
            var root = doc.RootElement;
            if (!root.TryGetProperty("sha", out var sha) || sha.ValueKind != JsonValueKind.String || sha.GetString() is not { Length: > 0 } commit
                || commit.Any(c => !char.IsAsciiHexDigit(c)))
                throw new HfDownloadException($"{url}: field 'sha' is missing or not a commit hash");
            if (!root.TryGetProperty("siblings", out var siblings) || siblings.ValueKind != JsonValueKind.Array)
                throw new HfDownloadException($"{url}: field 'siblings' is missing or not an array");
            var files = new List<string>();
            var i = 0;
            foreach (var s in siblings.EnumerateArray())
            {
                if (!s.TryGetProperty("rfilename", out var f) || f.GetString() is not { Length: > 0 } name)
                    throw new HfDownloadException($"{url}: siblings[{i}].rfilename is missing");
                if (name.StartsWith('/') || name.Split('/').Any(p => p is "" or "." or ".."))
                    throw new HfDownloadException($"{url}: siblings[{i}].rfilename '{name}' is not a relative path inside the repository");
                files.Add(name);
                i++;
            }
            return (commit, files);
        }
        catch (JsonException e)
        {
            throw new HfDownloadException($"{url}: invalid JSON at byte {e.BytePositionInLine}: {e.Message}", e);
        }
    }

    private async Task FetchFileAsync(HfModelRef model, string commit, string file, string repoDir, string target, CancellationToken ct)
    {
        var url = $"{_options.Endpoint}/{model.Repo}/resolve/{commit}/{string.Join('/', file.Split('/').Select(Uri.EscapeDataString))}";

        // HEAD without following redirects: for LFS files the redirect itself carries X-Linked-Etag / X-Linked-Size.
        string etag;
        long? size;
        using (var head = await SendAsync(HttpMethod.Head, url, null, ct, followRedirects: false).ConfigureAwait(false))
        {
            if ((int)head.StatusCode is >= 300 and < 400) { }
            else Check(head, model, $"file '{file}'");
            etag = Header(head, "X-Linked-Etag") ?? head.Headers.ETag?.Tag ?? Header(head, "ETag")
                ?? throw new HfDownloadException($"{url}: the hub sent no ETag for '{file}'");
            etag = NormalizeETag(etag);
            if (etag.Length == 0 || etag.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_')))
                throw new HfDownloadException($"{url}: ETag '{etag}' of '{file}' is not a usable blob name");
            size = long.TryParse(Header(head, "X-Linked-Size"), out var linked) ? linked : head.Content.Headers.ContentLength;
        }

        var blob = Path.Combine(repoDir, "blobs", etag);
        if (!File.Exists(blob))
            await DownloadBlobAsync(url, file, blob, etag, size, ct).ConfigureAwait(false);

        Directory.CreateDirectory(Path.GetDirectoryName(target)!);
        var relative = Path.GetRelativePath(Path.GetDirectoryName(target)!, blob);
        try
        {
            if (File.Exists(target) || new FileInfo(target).LinkTarget is not null) File.Delete(target);
            File.CreateSymbolicLink(target, relative);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            File.Copy(blob, target, overwrite: true); // file systems without symlinks, as huggingface_hub does
        }
    }

    private async Task DownloadBlobAsync(string url, string file, string blob, string etag, long? size, CancellationToken ct)
    {
        var incomplete = blob + ".incomplete";
        var bar = new ProgressBar(_progress, file, size, File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0);
        Exception? last = null;
        for (var attempt = 1; attempt <= _options.MaxAttempts; attempt++)
        {
            var offset = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;
            if (size is { } total && offset > total) { File.Delete(incomplete); offset = 0; }
            if (size is { } t2 && offset == t2 && offset > 0) break;
            bar.Reset(offset);
            try
            {
                var range = offset > 0 ? new RangeHeaderValue(offset, null) : null;
                using var response = await SendAsync(HttpMethod.Get, url, range, ct).ConfigureAwait(false);
                if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
                {
                    File.Delete(incomplete); // our partial file does not match the server's; start over
                    continue;
                }
                if (!response.IsSuccessStatusCode)
                    throw new HfDownloadException($"{url}: HTTP {(int)response.StatusCode} {response.ReasonPhrase} while downloading '{file}'");
                var append = response.StatusCode == HttpStatusCode.PartialContent;
                if (append && response.Content.Headers.ContentRange?.From is { } from && from != offset)
                    throw new HfDownloadException($"{url}: asked for bytes from {offset} of '{file}' but the server sent from {from}");
                await using var source = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
                await using var sink = new FileStream(incomplete, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
                if (!append) bar.Reset(0);
                var buffer = new byte[1 << 16];
                int n;
                while ((n = await source.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
                {
                    await sink.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                    bar.Add(n);
                }
                await sink.FlushAsync(ct).ConfigureAwait(false);
                if (size is { } expected && sink.Length != expected)
                    throw new IOException($"transfer of '{file}' ended at {sink.Length} of {expected} bytes");
                last = null;
                break;
            }
            catch (Exception e) when (e is IOException or HttpRequestException && !ct.IsCancellationRequested)
            {
                last = e; // resume from what reached the disk
            }
        }
        bar.Finish();
        if (last is not null || !File.Exists(incomplete))
            throw new HfDownloadException($"downloading '{file}' from {url} failed after {_options.MaxAttempts} attempts: {last?.Message}", last);

        if (size is { } want && new FileInfo(incomplete).Length != want)
            throw new HfDownloadException($"'{file}' from {url} has {new FileInfo(incomplete).Length} bytes, the hub said {want}");
        // LFS ETags are the sha256 of the content: check it, so a resumed download cannot splice wrong bytes.
        if (etag.Length == 64 && etag.All(char.IsAsciiHexDigitLower))
        {
            string actual;
            await using (var read = File.OpenRead(incomplete))
                actual = Convert.ToHexStringLower(await SHA256.HashDataAsync(read, ct).ConfigureAwait(false));
            if (!string.Equals(actual, etag, StringComparison.Ordinal))
            {
                File.Delete(incomplete);
                throw new HfDownloadException($"'{file}' from {url} has sha256 {actual}, expected {etag}; the partial download was removed, run again");
            }
        }
        File.Move(incomplete, blob, overwrite: true);
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string url, RangeHeaderValue? range, CancellationToken ct, bool followRedirects = true)
    {
        var uri = new Uri(url);
        var origin = uri;
        for (var hop = 0; ; hop++)
        {
            using var request = new HttpRequestMessage(method, uri);
            if (_options.Token is { } token && uri.Host == origin.Host && uri.Port == origin.Port)
                request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
            if (range is not null) request.Headers.Range = new RangeHeaderValue { Ranges = { new RangeItemHeaderValue(range.Ranges.First().From, null) } };
            var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            if (!followRedirects || (int)response.StatusCode is < 300 or >= 400 || response.Headers.Location is null)
                return response;
            if (hop >= 10)
            {
                response.Dispose();
                throw new HfDownloadException($"{url}: more than 10 redirects");
            }
            uri = new Uri(uri, response.Headers.Location);
            response.Dispose();
        }
    }

    private void Check(HttpResponseMessage response, HfModelRef model, string what)
    {
        if (response.IsSuccessStatusCode) return;
        var code = (int)response.StatusCode;
        throw response.StatusCode switch
        {
            HttpStatusCode.NotFound => new HfDownloadException($"{model}: {what} not found at {_options.Endpoint} (HTTP 404); check the repository name and revision"),
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => new HfDownloadException(
                $"{model}: access to {what} denied (HTTP {code}); the repository may be private or gated: {(_options.Token is null ? "set HF_TOKEN" : "check that HF_TOKEN may read it")}"),
            _ => new HfDownloadException($"{model}: {what}: HTTP {code} {response.ReasonPhrase}"),
        };
    }

    private static string? Header(HttpResponseMessage r, string name) =>
        r.Headers.TryGetValues(name, out var v) ? v.FirstOrDefault()
        : r.Content.Headers.TryGetValues(name, out var c) ? c.FirstOrDefault() : null;

    internal static string NormalizeETag(string etag)
    {
        var e = etag.Trim();
        if (e.StartsWith("W/", StringComparison.Ordinal)) e = e[2..];
        return e.Trim('"');
    }
}

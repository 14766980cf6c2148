using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Actors.Client.Tests;

/// <summary>
/// A local imitation of the Hugging Face hub's URLs and headers on 127.0.0.1:
/// GET /api/models/{repo}/revision/{rev} → {"sha", "siblings":[{"rfilename"}]};
/// HEAD/GET /{repo}/resolve/{rev}/{file} → small files: 200 with ETag (git sha1) and X-Repo-Commit;
/// LFS files (*.safetensors): 302 to /cdn/{sha256} with X-Linked-Etag / X-Linked-Size; /cdn/ serves bytes with Range.
/// </summary>
public sealed class FakeHub : IDisposable
{
    public const string Commit = "0123456789abcdef0123456789abcdef01234567";

    private readonly HttpListener _listener = new();
    private readonly Dictionary<string, Dictionary<string, byte[]>> _repos = new(StringComparer.Ordinal);
    private readonly Task _loop;

    public ConcurrentQueue<string> Requests { get; } = new(); // "METHOD path [range]"
    public string Endpoint { get; }
    /// <summary>Cut the connection after this many bytes the first time this blob is sent.</summary>
    public (string File, int AfterBytes)? CutOnce { get; set; }
    public string? RequiredToken { get; set; }

    public FakeHub()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Endpoint = $"http://127.0.0.1:{port}";
        _listener.Prefixes.Add(Endpoint + "/");
        _listener.Start();
        _loop = Task.Run(LoopAsync);
    }

    public void AddRepo(string repo, Dictionary<string, byte[]> files) => _repos[repo] = files;

    public static string Sha256(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b));
    public static string GitSha(byte[] b) => Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {b.Length}\0"), .. b]));
    public static bool IsLfs(string file) => file.EndsWith(".safetensors", StringComparison.Ordinal);

    public int FileRequests => Requests.Count(r => r.Contains("/resolve/", StringComparison.Ordinal) || r.Contains("/cdn/", StringComparison.Ordinal));

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext ctx;
            try { ctx = await _listener.GetContextAsync(); }
            catch (Exception) { return; }
            _ = Task.Run(() => Handle(ctx));
        }
    }

    private void Handle(HttpListenerContext ctx)
    {
        var req = ctx.Request;
        var res = ctx.Response;
        var path = Uri.UnescapeDataString(req.Url!.AbsolutePath);
        Requests.Enqueue($"{req.HttpMethod} {path} {req.Headers["Range"]}".TrimEnd());
        try
        {
            if (RequiredToken is not null && req.Headers["Authorization"] != "Bearer " + RequiredToken && !path.StartsWith("/cdn/", StringComparison.Ordinal))
            {
                Status(res, 401);
                return;
            }
            if (path.StartsWith("/api/models/", StringComparison.Ordinal))
            {
                var rest = path["/api/models/".Length..];
                var marker = rest.IndexOf("/revision/", StringComparison.Ordinal);
                var repo = rest[..marker];
                if (!_repos.TryGetValue(repo, out var files)) { Status(res, 404, """{"error":"Repository not found"}"""); return; }
                var json = JsonSerializer.Serialize(new { id = repo, sha = Commit, siblings = files.Keys.Select(f => new { rfilename = f }) });
                Status(res, 200, json);
                return;
            }
            if (path.StartsWith("/cdn/", StringComparison.Ordinal))
            {
                var sha = path["/cdn/".Length..];
                var (file, bytes) = _repos.Values.SelectMany(r => r).First(kv => Sha256(kv.Value) == sha);
                Serve(ctx, file, bytes, null);
                return;
            }
            var resolve = path.IndexOf("/resolve/", StringComparison.Ordinal);
            if (resolve > 0)
            {
                var repo = path[1..resolve];
                var after = path[(resolve + "/resolve/".Length)..];
                var slash = after.IndexOf('/');
                var fileName = after[(slash + 1)..];
                if (!_repos.TryGetValue(repo, out var files) || !files.TryGetValue(fileName, out var bytes)) { Status(res, 404); return; }
                res.AddHeader("X-Repo-Commit", Commit);
                if (IsLfs(fileName))
                {
                    res.AddHeader("X-Linked-Etag", $"\"{Sha256(bytes)}\"");
                    res.AddHeader("X-Linked-Size", bytes.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
                    res.AddHeader("ETag", $"\"{GitSha(bytes)}\"");
                    res.AddHeader("Location", "/cdn/" + Sha256(bytes));
                    Status(res, 302);
                    return;
                }
                res.AddHeader("ETag", $"\"{GitSha(bytes)}\"");
                Serve(ctx, fileName, bytes, null);
                return;
            }
            Status(res, 404);
        }
        catch (Exception)
        {
            try { res.Abort(); } catch (Exception) { }
        }
    }

    private void Serve(HttpListenerContext ctx, string file, byte[] bytes, object? _)
    {
        var req = ctx.Request;
        var res = ctx.Response;
        var from = 0;
        if (req.Headers["Range"] is { } range && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            from = int.Parse(range[6..^1], System.Globalization.CultureInfo.InvariantCulture);
            if (from >= bytes.Length) { Status(res, 416); return; }
            res.StatusCode = 206;
            res.AddHeader("Content-Range", $"bytes {from}-{bytes.Length - 1}/{bytes.Length}");
        }
        else res.StatusCode = 200;
        res.ContentLength64 = bytes.Length - from;
        if (req.HttpMethod == "HEAD") { res.Close(); return; }

        if (CutOnce is { } cut && cut.File == file && from == 0)
        {
            CutOnce = null;
            res.OutputStream.Write(bytes, 0, cut.AfterBytes);
            res.OutputStream.Flush();
            res.Abort(); // connection dropped mid-body
            return;
        }
        res.OutputStream.Write(bytes, from, bytes.Length - from);
        res.Close();
    }

    private static void Status(HttpListenerResponse res, int code, string? body = null)
    {
        res.StatusCode = code;
        if (body is not null)
        {
            var b = Encoding.UTF8.GetBytes(body);
            res.ContentType = "application/json";
            res.ContentLength64 = b.Length;
            res.OutputStream.Write(b);
        }
        res.Close();
    }

    public void Dispose()
    {
        _listener.Stop();
        _listener.Close();
        try { _loop.Wait(TimeSpan.FromSeconds(2)); } catch (AggregateException) { }
    }
}

using System.Diagnostics;
using Actors.Grains.Storage;

namespace Actors.Grains.Tests.Storage;

/// <summary>
/// Where the Azure tests find Azurite: ACTORS_TEST_AZURITE holds the connection string (.ci/run starts Azurite and
/// sets it). Unset: the tests fail when CI is set (CI must not silently skip them) and skip otherwise.
/// </summary>
internal static class Azurite
{
    public const string Variable = "ACTORS_TEST_AZURITE";
    public const string AccountKey = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    public static string ConnectionStringFor(int port) =>
        $"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AccountKey};BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;";

    public static string RequireConnectionString()
    {
        var cs = Environment.GetEnvironmentVariable(Variable);
        if (!string.IsNullOrWhiteSpace(cs)) return cs;
        var reason = $"{Variable} is not set: start Azurite (.ci/run does: azurite-blob --blobHost 127.0.0.1 --blobPort 10000 --inMemoryPersistence) and set it to {ConnectionStringFor(10000)}";
        if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CI"))) Assert.Fail("CI is set but " + reason);
        Assert.Skip(reason);
        return null!;
    }

    /// <summary>Options that give up fast: one retry, short timeouts, so an outage test ends in seconds.</summary>
    public static AzureBlobStoreOptions FastOptions(string connectionString, string? container = null) => new()
    {
        ConnectionString = connectionString,
        ContainerName = container ?? "t-" + Guid.NewGuid().ToString("N")[..20],
        MaxRetries = 1,
        RetryDelay = TimeSpan.FromMilliseconds(50),
        NetworkTimeout = TimeSpan.FromSeconds(3),
    };

    /// <summary>The azurite-blob launcher installed by .ci/run (or ACTORS_TEST_AZURITE_BIN), or null.</summary>
    public static string? FindLauncher()
    {
        var bin = Environment.GetEnvironmentVariable("ACTORS_TEST_AZURITE_BIN");
        if (!string.IsNullOrEmpty(bin) && File.Exists(bin)) return bin;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, ".ci", "node", "node_modules", ".bin", "azurite-blob");
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }
}

/// <summary>A private Azurite on a free port, for tests that stop the service mid-test.</summary>
internal sealed class AzuriteProcess : IAsyncDisposable
{
    private readonly Process _process;
    public int Port { get; }
    public string ConnectionString => Azurite.ConnectionStringFor(Port);

    private AzuriteProcess(Process process, int port) { _process = process; Port = port; }

    public static async Task<AzuriteProcess> StartAsync()
    {
        var launcher = Azurite.FindLauncher();
        if (launcher is null)
        {
            const string reason = "azurite-blob not found (.ci/node/node_modules/.bin; .ci/run installs it, or set ACTORS_TEST_AZURITE_BIN)";
            if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("CI"))) Assert.Fail("CI is set but " + reason);
            Assert.Skip(reason);
        }
        var port = Net.ClosedPort();
        var psi = new ProcessStartInfo(launcher!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in new[] { "--blobHost", "127.0.0.1", "--blobPort", port.ToString(), "--inMemoryPersistence", "--extentMemoryLimit", "64", "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry" })
            psi.ArgumentList.Add(a);
        var p = Process.Start(psi) ?? throw new InvalidOperationException("azurite-blob did not start");
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        if (!await Net.WaitForPortAsync(port, TimeSpan.FromSeconds(30)))
        {
            p.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"azurite-blob did not open port {port} within 30 s");
        }
        return new AzuriteProcess(p, port);
    }

    /// <summary>Kills the service abruptly (an outage, not a shutdown) and waits until it is gone.</summary>
    public async Task KillAsync()
    {
        if (_process.HasExited) return;
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process.Dispose();
    }
}

using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;

namespace Actors.Client;

/// <summary>
/// Finds the local silo, and starts one when none answers: `actors-silo` next to this executable (apphost, or
/// actors-silo.dll run with dotnet), or the file/folder named by ACTORS_SILO_PATH. The silo is started detached
/// (own session, output appended to {data dir}/silo.log) so that it outlives this CLI call and the next call reuses it.
/// </summary>
public sealed class SiloLauncher(int gatewayPort, string dataDirectory, Func<string, string?> getEnv, TextWriter? status)
{
    public const int DefaultGatewayPort = 30000;

    public string LogFile => Path.Combine(dataDirectory, "silo.log");
    public string PidFile => Path.Combine(dataDirectory, "silo.pid");

    /// <summary>The data directory as the silo computes it: ACTORS_HOME, else XDG_DATA_HOME/actors, else ~/.local/share/actors.</summary>
    public static string DefaultDataDirectory(Func<string, string?> getEnv) =>
        getEnv("ACTORS_HOME") is { Length: > 0 } home ? home
        : getEnv("XDG_DATA_HOME") is { Length: > 0 } xdg ? Path.Combine(xdg, "actors")
        : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share", "actors");

    /// <summary>Whether something accepts TCP connections on the gateway port of localhost.</summary>
    public async Task<bool> GatewayAnswersAsync(CancellationToken ct)
    {
        using var tcp = new TcpClient();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(1));
        try
        {
            await tcp.ConnectAsync("127.0.0.1", gatewayPort, timeout.Token);
            return true;
        }
        catch (Exception e) when (e is SocketException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            return false;
        }
    }

    /// <summary>Ensures a gateway answers, starting the silo when needed and waiting for it (ACTORS_SILO_START_TIMEOUT seconds, default 120).</summary>
    public async Task EnsureRunningAsync(CancellationToken ct)
    {
        if (await GatewayAnswersAsync(ct)) return;
        var (file, args) = FindSilo();
        Directory.CreateDirectory(dataDirectory);
        status?.WriteLine($"starting the silo ({file}); log: {LogFile}");
        Start(file, args);

        var seconds = int.TryParse(getEnv("ACTORS_SILO_START_TIMEOUT"), NumberStyles.None, CultureInfo.InvariantCulture, out var s) ? s : 120;
        var deadline = Stopwatch.GetTimestamp() + (long)(seconds * (double)Stopwatch.Frequency);
        while (Stopwatch.GetTimestamp() < deadline)
        {
            await Task.Delay(250, ct);
            if (await GatewayAnswersAsync(ct)) return;
        }
        throw new CliException($"the silo did not open gateway port {gatewayPort} within {seconds} s; see {LogFile}", CliException.NoSilo);
    }

    /// <summary>The program to run and its leading arguments (["path/actors-silo.dll"] when run through dotnet).</summary>
    public (string File, string[] Args) FindSilo()
    {
        var candidates = new List<string>();
        if (getEnv("ACTORS_SILO_PATH") is { Length: > 0 } configured)
        {
            if (File.Exists(configured)) return Runnable(Path.GetFullPath(configured));
            if (!Directory.Exists(configured))
                throw new CliException($"ACTORS_SILO_PATH '{configured}' does not exist", CliException.NoSilo);
            candidates.Add(configured);
        }
        candidates.Add(AppContext.BaseDirectory);
        foreach (var dir in candidates)
        {
            foreach (var name in new[] { OperatingSystem.IsWindows() ? "actors-silo.exe" : "actors-silo", "actors-silo.dll" })
            {
                var path = Path.Combine(dir, name);
                if (File.Exists(path)) return Runnable(Path.GetFullPath(path));
            }
        }
        throw new CliException(
            $"no silo is running on gateway port {gatewayPort} and actors-silo was not found in {string.Join(" or ", candidates)}; set ACTORS_SILO_PATH or start actors-silo",
            CliException.NoSilo);
    }

    private static (string, string[]) Runnable(string path) =>
        path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? ("dotnet", [path]) : (path, []);

    private void Start(string file, string[] args)
    {
        var siloArgs = args.Concat(["--gateway-port", gatewayPort.ToString(CultureInfo.InvariantCulture), "--data-dir", dataDirectory]).ToList();
        if (getEnv("ACTORS_SILO_PORT") is { Length: > 0 } siloPort) siloArgs.AddRange(["--silo-port", siloPort]);
        ProcessStartInfo psi;
        if (!OperatingSystem.IsWindows() && File.Exists("/bin/sh"))
        {
            // setsid: own session, so the terminal's hangup or Ctrl+C does not reach it; "$@" keeps paths unquoted-safe.
            psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
            psi.ArgumentList.Add("-c");
            psi.ArgumentList.Add("""if command -v setsid >/dev/null 2>&1; then setsid "$@" >>"$ACTORS_SILO_LOG" 2>&1 </dev/null & else nohup "$@" >>"$ACTORS_SILO_LOG" 2>&1 </dev/null & fi""");
            psi.ArgumentList.Add("actors-silo");
            psi.ArgumentList.Add(file);
            foreach (var a in siloArgs) psi.ArgumentList.Add(a);
            psi.Environment["ACTORS_SILO_LOG"] = LogFile;
        }
        else
        {
            psi = new ProcessStartInfo(file) { UseShellExecute = false, CreateNoWindow = true };
            foreach (var a in siloArgs) psi.ArgumentList.Add(a);
        }
        using var p = Process.Start(psi) ?? throw new CliException($"could not start {file}", CliException.NoSilo);
        if (psi.FileName == "/bin/sh") p.WaitForExit();
    }

    /// <summary>Stops the silo whose pid file is in the data directory (SIGTERM: a clean shutdown) and waits for its gateway to close.</summary>
    public async Task<bool> StopAsync(CancellationToken ct)
    {
        if (!File.Exists(PidFile) || !int.TryParse(File.ReadAllText(PidFile).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            return false;
        Process process;
        try { process = Process.GetProcessById(pid); }
        catch (ArgumentException) { File.Delete(PidFile); return false; }
        using (process)
        {
            if (OperatingSystem.IsWindows()) process.Kill();
            else
            {
                using var kill = Process.Start(new ProcessStartInfo("kill") { ArgumentList = { "-TERM", pid.ToString(CultureInfo.InvariantCulture) }, UseShellExecute = false })!;
                await kill.WaitForExitAsync(ct);
            }
            using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
            wait.CancelAfter(TimeSpan.FromSeconds(30));
            try { await process.WaitForExitAsync(wait.Token); }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new CliException($"silo pid {pid} did not stop within 30 s", CliException.NoSilo);
            }
        }
        return true;
    }
}

using System.Globalization;

namespace Actors.Silo;

/// <summary>How one silo runs. Defaults give a one-machine cluster on localhost with state under the data directory.</summary>
public sealed class ActorsSiloOptions
{
    public const int DefaultSiloPort = 11111;
    public const int DefaultGatewayPort = 30000;
    public const string DefaultClusterId = "actors";
    public const string DefaultServiceId = "actors";

    /// <summary>Port for silo-to-silo traffic (args --silo-port, env ACTORS_SILO_PORT).</summary>
    public int SiloPort { get; set; } = DefaultSiloPort;

    /// <summary>Port clients connect to (args --gateway-port, env ACTORS_GATEWAY_PORT).</summary>
    public int GatewayPort { get; set; } = DefaultGatewayPort;

    public string ClusterId { get; set; } = DefaultClusterId;
    public string ServiceId { get; set; } = DefaultServiceId;

    /// <summary>Root of everything this silo stores (args --data-dir, env ACTORS_HOME, default ~/.local/share/actors).</summary>
    public string DataDirectory { get; set; } = DefaultDataDirectory(Environment.GetEnvironmentVariable);

    /// <summary>
    /// Whether to use localhost clustering. Test clusters, which bring their own membership, turn this off.
    /// </summary>
    public bool UseLocalhostClustering { get; set; } = true;

    /// <summary>
    /// Azure Storage connection string for blobs (KV snapshots, documents) (args --blob-connection-string, env
    /// ACTORS_BLOB_CONNECTION_STRING). Null or empty: blobs live on local disk under <see cref="BlobStorageDirectory"/>.
    /// </summary>
    public string? BlobConnectionString { get; set; }

    /// <summary>Where the local-disk blob store lives when no connection string is given: {DataDirectory}/blobs.</summary>
    public string BlobStorageDirectory => Path.Combine(DataDirectory, "blobs");

    /// <summary>Where grain state lives: {DataDirectory}/grains.</summary>
    public string GrainStorageDirectory => Path.Combine(DataDirectory, "grains");

    /// <summary>File with the process id of the running silo (used by `actors silo stop`).</summary>
    public string PidFile => Path.Combine(DataDirectory, "silo.pid");

    public static string DefaultDataDirectory(Func<string, string?> getEnv)
    {
        var home = getEnv("ACTORS_HOME");
        if (!string.IsNullOrWhiteSpace(home)) return home;
        var xdg = getEnv("XDG_DATA_HOME");
        if (!string.IsNullOrWhiteSpace(xdg)) return Path.Combine(xdg, "actors");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "share", "actors");
    }

    /// <summary>Options from environment first, then command-line arguments (which win). Throws ArgumentException naming a bad argument.</summary>
    public static ActorsSiloOptions FromArgs(IReadOnlyList<string> args, Func<string, string?> getEnv)
    {
        var o = new ActorsSiloOptions { DataDirectory = DefaultDataDirectory(getEnv) };
        if (getEnv("ACTORS_SILO_PORT") is { Length: > 0 } sp) o.SiloPort = Port("ACTORS_SILO_PORT", sp);
        if (getEnv("ACTORS_GATEWAY_PORT") is { Length: > 0 } gp) o.GatewayPort = Port("ACTORS_GATEWAY_PORT", gp);
        if (getEnv("ACTORS_BLOB_CONNECTION_STRING") is { Length: > 0 } bc) o.BlobConnectionString = bc;
        for (var i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"argument {args[i]} needs a value");
            switch (args[i])
            {
                case "--silo-port": o.SiloPort = Port("--silo-port", Value()); break;
                case "--gateway-port": o.GatewayPort = Port("--gateway-port", Value()); break;
                case "--data-dir": o.DataDirectory = Value(); break;
                case "--cluster-id": o.ClusterId = Value(); break;
                case "--service-id": o.ServiceId = Value(); break;
                case "--blob-connection-string": o.BlobConnectionString = Value(); break;
                default: throw new ArgumentException($"unknown argument '{args[i]}' (known: --silo-port N, --gateway-port N, --data-dir PATH, --cluster-id ID, --service-id ID, --blob-connection-string CS)");
            }
        }
        return o;
    }

    private static int Port(string name, string value) =>
        int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p is > 0 and < 65536
            ? p
            : throw new ArgumentException($"{name} must be a TCP port (1-65535), got '{value}'");
}

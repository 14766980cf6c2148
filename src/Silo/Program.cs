using System.Globalization;
using Actors.Engine.Runtime;
using Actors.Grains;
using Actors.Grains.Placement;
using Actors.Silo;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

ActorsSiloOptions options;
try
{
    options = ActorsSiloOptions.FromArgs(args, Environment.GetEnvironmentVariable);
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"actors-silo: {e.Message}");
    return 2;
}

Directory.CreateDirectory(options.DataDirectory);
var builder = Host.CreateApplicationBuilder();
builder.UseOrleans(silo => silo.ConfigureActorsSilo(options));
// Each model directory a session names is loaded once per silo into the engine (CPU backend; its loop runs on
// its own thread and batches every session of the device).
builder.Services.AddTextGeneratorFactory(modelDirectory => TextGenerator.Load(modelDirectory));
// Placement reads the loaded engines' page pools (one device per silo, ordinal 0) instead of a simulated device.
builder.Services.AddEngineDeviceStats();
// A graceful stop deactivates every session, and each writes its KV snapshot to blob (bounded by
// SessionKvOptions.SnapshotSaveTimeout) before the engines are disposed with the service provider; give it room.
builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromMinutes(2));

using var host = builder.Build();
var log = host.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Actors.Silo");
await host.StartAsync();
File.WriteAllText(options.PidFile, Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
SiloLog.Started(log, options.SiloPort, options.GatewayPort, options.DataDirectory, Environment.ProcessId);
try
{
    await host.WaitForShutdownAsync();
}
finally
{
    try { File.Delete(options.PidFile); } catch (IOException) { }
    SiloLog.Stopped(log);
}
return 0;

internal static partial class SiloLog
{
    [LoggerMessage(1, LogLevel.Information, "Actors silo up: silo port {SiloPort}, gateway port {GatewayPort}, data in {DataDirectory}, pid {ProcessId}")]
    public static partial void Started(ILogger logger, int siloPort, int gatewayPort, string dataDirectory, int processId);

    [LoggerMessage(2, LogLevel.Information, "Actors silo stopped")]
    public static partial void Stopped(ILogger logger);
}

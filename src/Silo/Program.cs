using System.Globalization;
using Actors.Engine.Runtime;
using Actors.Grains;
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
// Each model directory a session names is loaded once per silo into the engine (its loop runs on its own thread and
// batches every session of the device); placement reads the engines' page pools; a graceful stop lets every session
// store its KV snapshot before the engines are disposed (ActorsSilo.AddActorsSilo).
builder.AddActorsSilo(options, modelDirectory => TextGenerator.Load(modelDirectory));

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

using Actors.Client;

return await ActorsCli.RunAsync(args, Console.Out, Console.Error, Console.In, Environment.GetEnvironmentVariable);

namespace Actors.Client;

/// <summary>A user-facing failure: the message is printed as one line and the CLI exits with <see cref="ExitCode"/>.</summary>
public sealed class CliException(string message, int exitCode = CliException.BadInput) : Exception(message)
{
    /// <summary>Bad input: missing file, empty document, bad model reference.</summary>
    public const int BadInput = 2;
    /// <summary>The silo could not be reached or started.</summary>
    public const int NoSilo = 3;

    public int ExitCode { get; } = exitCode;
}

namespace Actors.Abstractions;

/// <summary>One message of a session: role is "system", "user" or "assistant".</summary>
[GenerateSerializer, Immutable]
public sealed record Turn([property: Id(0)] string Role, [property: Id(1)] string Content)
{
    public const string SystemRole = "system";
    public const string UserRole = "user";
    public const string AssistantRole = "assistant";
}

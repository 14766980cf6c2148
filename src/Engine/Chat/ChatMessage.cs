namespace Actors.Engine.Chat;

/// <summary>One message of a conversation as chat templates see it (role: system, user, assistant).</summary>
public sealed record ChatMessage(string Role, string Content);

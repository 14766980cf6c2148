namespace Actors.Abstractions;

/// <summary>
/// One session (key: session id): its model, turns and token ids, persisted so that it outlives its activation,
/// its silo and a cluster restart. Turns are persisted before they are acknowledged.
/// </summary>
public interface IDocumentGrain : IGrainWithStringKey
{
    /// <summary>Creates the session or re-opens it; loads and checks the model in the silo.</summary>
    Task<SessionInfo> Open(OpenSession request);

    /// <summary>
    /// Adds a user turn and streams the answer. The user turn is stored before generation starts; the assistant turn
    /// is stored before the final chunk (with stats) is sent. On error or cancellation neither turn remains.
    /// Throws ArgumentException for an empty message or a prompt that does not fit the model's context,
    /// InvalidOperationException when the session was never opened.
    /// Cancelling <paramref name="cancellationToken"/> stops generation on the device and rolls the turn back.
    /// </summary>
    IAsyncEnumerable<TokenChunk> Ask(AskRequest request, CancellationToken cancellationToken = default);

    Task<SessionInfo> GetInfo();

    Task<IReadOnlyList<Turn>> GetTurns();
}

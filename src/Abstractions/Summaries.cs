namespace Actors.Abstractions;

/// <summary>
/// The direct summarization path: a document that fits one prompt becomes one user turn of a DocumentGrain session.
/// (The job grain that plans map-reduce over long documents comes later and will reuse this prompt.)
/// </summary>
public static class Summaries
{
    public const string Instruction = "Summarize the following document:\n\n";

    /// <summary>The user message for summarizing <paramref name="document"/>; throws ArgumentException when it is empty.</summary>
    public static string Prompt(string document, string? source = null)
    {
        ArgumentNullException.ThrowIfNull(document);
        if (string.IsNullOrWhiteSpace(document))
            throw new ArgumentException($"document{(source is null ? "" : $" '{source}'")} is empty: nothing to summarize", nameof(document));
        return Instruction + document;
    }
}

namespace Actors.Grains.Jobs.Planning;

/// <summary>
/// One map-reduce chunk of a document, by character offsets into the document's string (UTF-16 code units).
/// The chunk's text is <c>document.Substring(Start, Length)</c>; it begins with whole sentences repeated from the
/// end of the previous chunk (the overlap) and its new content starts at <see cref="NewStart"/>.
/// <see cref="Tokens"/> is the exact token count of the chunk's text as the planning model encodes it.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record DocumentChunk(
    [property: Id(0)] int Index,
    [property: Id(1)] int Start,
    [property: Id(2)] int Length,
    [property: Id(3)] int NewStart,
    [property: Id(4)] int Tokens)
{
    /// <summary>Offset just past the chunk's last character.</summary>
    public int End => Start + Length;

    /// <summary>Characters repeated from the previous chunk (0 for the first chunk or without overlap).</summary>
    public int OverlapLength => NewStart - Start;

    /// <summary>The chunk's text in <paramref name="document"/> (the document the chunk was made from).</summary>
    public string TextOf(string document)
    {
        ArgumentNullException.ThrowIfNull(document);
        if (End > document.Length)
            throw new ArgumentException($"chunk {Index} ends at character {End}, past the document's {document.Length} characters; it was made from another document", nameof(document));
        return document.Substring(Start, Length);
    }
}

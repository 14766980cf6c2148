namespace Actors.Grains.Ingestion;

/// <summary>
/// A document stored in the blob store by content: the original bytes under <see cref="OriginalBlobName"/> and the
/// extracted text (UTF-8, '\n' line ends) under <see cref="TextBlobName"/>.
/// </summary>
/// <param name="ContentHash">SHA-256 of the original bytes, 64 lower-case hex digits: the document's identity.</param>
/// <param name="Kind">The detected format.</param>
/// <param name="MediaType">The detected format's media type (<see cref="DocumentMediaTypes"/>), not the declared one.</param>
/// <param name="Text">The extracted text: paragraphs separated by blank lines, PDF pages by blank lines.</param>
/// <param name="OriginalLength">Length of the original bytes.</param>
/// <param name="Title">The document's title where the format has one (HTML title, PDF info, DOCX core properties), else null.</param>
/// <param name="Charset">The character set the bytes were decoded with (text and HTML), e.g. "utf-8", "utf-16BE", "windows-1252"; null for PDF and DOCX.</param>
/// <param name="FileName">The file name given at ingestion (the first one, for a document loaded back from the store).</param>
/// <param name="OriginalBlobName">Blob holding the original bytes: "documents/{hash}".</param>
/// <param name="TextBlobName">Blob holding the extracted text: "documents/{hash}.txt".</param>
/// <param name="AlreadyStored">True when both blobs existed before this ingestion, so nothing was written.</param>
[GenerateSerializer, Immutable]
public sealed record IngestedDocument(
    [property: Id(0)] string ContentHash,
    [property: Id(1)] DocumentKind Kind,
    [property: Id(2)] string MediaType,
    [property: Id(3)] string Text,
    [property: Id(4)] long OriginalLength,
    [property: Id(5)] string? Title,
    [property: Id(6)] string? Charset,
    [property: Id(7)] string FileName,
    [property: Id(8)] string OriginalBlobName,
    [property: Id(9)] string TextBlobName,
    [property: Id(10)] bool AlreadyStored);

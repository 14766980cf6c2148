namespace Actors.Grains.Ingestion;

/// <summary>
/// The document formats ingestion understands. (Not named "DocumentFormat": that is the root namespace of the
/// Open XML SDK, and a type of that name here would shadow it.)
/// </summary>
public enum DocumentKind
{
    /// <summary>Not (yet) detected; used in rejections that happen before detection (empty, oversized).</summary>
    Unknown = 0,
    PlainText,
    Markdown,
    Html,
    Pdf,
    Docx,
}

/// <summary>Media types of <see cref="DocumentKind"/>s and the file extensions that select them.</summary>
public static class DocumentMediaTypes
{
    public const string PlainText = "text/plain";
    public const string Markdown = "text/markdown";
    public const string Html = "text/html";
    public const string Pdf = "application/pdf";
    public const string Docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

    /// <summary>The canonical media type of <paramref name="kind"/> (application/octet-stream for Unknown).</summary>
    public static string Of(DocumentKind kind) => kind switch
    {
        DocumentKind.PlainText => PlainText,
        DocumentKind.Markdown => Markdown,
        DocumentKind.Html => Html,
        DocumentKind.Pdf => Pdf,
        DocumentKind.Docx => Docx,
        _ => "application/octet-stream",
    };

    /// <summary>
    /// The kind a declared media type names (parameters such as "; charset=..." ignored), or null when it names
    /// none of ours (application/octet-stream, image/png, ...).
    /// </summary>
    public static DocumentKind? FromMediaType(string? mediaType)
    {
        if (string.IsNullOrWhiteSpace(mediaType)) return null;
        var semi = mediaType.IndexOf(';');
        var bare = (semi >= 0 ? mediaType[..semi] : mediaType).Trim().ToLowerInvariant();
        return bare switch
        {
            PlainText or "text/x-log" or "text/csv" => DocumentKind.PlainText,
            Markdown or "text/x-markdown" => DocumentKind.Markdown,
            Html or "application/xhtml+xml" => DocumentKind.Html,
            Pdf or "application/x-pdf" => DocumentKind.Pdf,
            Docx => DocumentKind.Docx,
            _ => null,
        };
    }

    /// <summary>The kind a file name's extension names, or null when the extension is missing or not ours.</summary>
    public static DocumentKind? FromFileName(string? fileName)
    {
        if (string.IsNullOrWhiteSpace(fileName)) return null;
        return Path.GetExtension(fileName).ToLowerInvariant() switch
        {
            ".txt" or ".text" or ".log" or ".csv" => DocumentKind.PlainText,
            ".md" or ".markdown" or ".mdown" or ".mkd" => DocumentKind.Markdown,
            ".html" or ".htm" or ".xhtml" => DocumentKind.Html,
            ".pdf" => DocumentKind.Pdf,
            ".docx" => DocumentKind.Docx,
            _ => null,
        };
    }
}

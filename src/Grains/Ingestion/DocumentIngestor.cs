using System.Buffers;
using System.Security.Cryptography;
using System.Text;
using Actors.Grains.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Actors.Grains.Ingestion;

/// <summary>
/// Turns an uploaded document (text, Markdown, HTML, PDF, DOCX) into plain text and stores both, once, in the blob
/// store by SHA-256 of the original bytes. Order of work: read (bounded by <see cref="IngestionOptions.MaxBytes"/>),
/// hash, detect the format, extract and check the text, and only then write: original first, text second (the
/// text blob is the "complete" marker). A rejected document therefore writes nothing, and a failed second write
/// deletes the first when this call created it.
/// </summary>
public sealed partial class DocumentIngestor
{
    /// <summary>Prefix of every document blob.</summary>
    public const string BlobPrefix = "documents/";

    private const string KindKey = "kind";
    private const string MediaTypeKey = "media_type";
    private const string CharsetKey = "charset";
    private const string TitleKey = "title_uri";
    private const string FileNameKey = "file_name_uri";
    private const string OriginalLengthKey = "original_length";
    private const int MaxMetadataTextChars = 256;

    private static readonly UTF8Encoding Utf8NoBom = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly IBlobStore _store;
    private readonly IngestionOptions _options;
    private readonly ILogger _logger;

    public DocumentIngestor(IBlobStore store, IngestionOptions? options = null, ILogger<DocumentIngestor>? logger = null)
    {
        ArgumentNullException.ThrowIfNull(store);
        _store = store;
        _options = options ?? new IngestionOptions();
        _options.Validate();
        _logger = (ILogger?)logger ?? NullLogger.Instance;
    }

    public IngestionOptions Options => _options;

    /// <summary>The document identity used for storage: SHA-256 of the bytes as 64 lower-case hex digits.</summary>
    public static string ComputeContentHash(ReadOnlySpan<byte> content) => Convert.ToHexStringLower(SHA256.HashData(content));

    /// <summary>Blob name of the original bytes of the document with SHA-256 <paramref name="contentHash"/>.</summary>
    public static string OriginalBlobName(string contentHash) => BlobPrefix + ValidateHash(contentHash);

    /// <summary>Blob name of the extracted text of the document with SHA-256 <paramref name="contentHash"/>.</summary>
    public static string TextBlobName(string contentHash) => BlobPrefix + ValidateHash(contentHash) + ".txt";

    /// <summary>
    /// Reads <paramref name="content"/> to its end (at most <see cref="IngestionOptions.MaxBytes"/> + 1 bytes),
    /// then ingests it as <see cref="IngestAsync(ReadOnlyMemory{byte}, string, string?, CancellationToken)"/>.
    /// </summary>
    /// <param name="fileName">The name the user gave; its extension is one hint to the format. Used in error messages.</param>
    /// <param name="mediaType">The declared media type (e.g. an HTTP Content-Type), or null; another hint.</param>
    /// <exception cref="DocumentRejectedException">The document is refused; nothing was written.</exception>
    public async Task<IngestedDocument> IngestAsync(Stream content, string fileName, string? mediaType, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(content);
        ArgumentNullException.ThrowIfNull(fileName);
        var bytes = await ReadBoundedAsync(content, fileName, ct).ConfigureAwait(false);
        return await IngestAsync(bytes, fileName, mediaType, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Detects the format (magic bytes first, then the declared media type, then the file name's extension, then
    /// content sniffing), extracts the text and stores original and text under the content hash unless already there.
    /// </summary>
    /// <exception cref="DocumentRejectedException">The document is refused; nothing was written.</exception>
    public async Task<IngestedDocument> IngestAsync(ReadOnlyMemory<byte> content, string fileName, string? mediaType, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(fileName);
        ct.ThrowIfCancellationRequested();
        if (content.Length == 0)
            throw Rejected(fileName, DocumentKind.Unknown, DocumentRejectionReason.Empty, "0 bytes");
        if (content.Length > _options.MaxBytes)
            throw Rejected(fileName, DocumentKind.Unknown, DocumentRejectionReason.TooLarge, $"{content.Length} bytes, over the limit of {_options.MaxBytes} bytes");

        // Extraction is CPU-bound (PDF layout analysis, XML parsing): off the caller's (grain's) scheduler.
        var extracted = await Task.Run(() => Extract(content, fileName, mediaType, ct), ct).ConfigureAwait(false);
        var hash = ComputeContentHash(content.Span);
        return await StoreAsync(hash, content, fileName, extracted, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Detects the format and extracts the text without touching the blob store (what <see cref="IngestAsync(ReadOnlyMemory{byte}, string, string?, CancellationToken)"/>
    /// does before it writes). Synchronous and CPU-bound.
    /// </summary>
    /// <exception cref="DocumentRejectedException">The document is refused.</exception>
    public ExtractedDocument Extract(ReadOnlyMemory<byte> content, string fileName, string? mediaType, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(fileName);
        if (content.Length == 0)
            throw Rejected(fileName, DocumentKind.Unknown, DocumentRejectionReason.Empty, "0 bytes");
        if (content.Length > _options.MaxBytes)
            throw Rejected(fileName, DocumentKind.Unknown, DocumentRejectionReason.TooLarge, $"{content.Length} bytes, over the limit of {_options.MaxBytes} bytes");
        var kind = FormatDetector.Detect(content.Span, fileName, mediaType);
        ct.ThrowIfCancellationRequested();
        var extracted = kind switch
        {
            DocumentKind.Pdf => PdfTextExtractor.Extract(content, fileName, _options.MaxExtractedChars, ct),
            DocumentKind.Docx => DocxTextExtractor.Extract(content, fileName, _options, ct),
            DocumentKind.Html => HtmlTextExtractor.Extract(content.Span, fileName, mediaType, _options.MaxExtractedChars),
            _ => PlainTextExtractor.Extract(content.Span, fileName, kind, mediaType),
        };
        var text = TextNormalizer.Finish(extracted.Text);
        if (text.Length > _options.MaxExtractedChars)
            throw Rejected(fileName, kind, DocumentRejectionReason.TextTooLong, $"{text.Length} chars, over the limit of {_options.MaxExtractedChars}");
        if (string.IsNullOrWhiteSpace(text))
            throw Rejected(fileName, kind, DocumentRejectionReason.NoText, kind switch
            {
                DocumentKind.Html => "the HTML has no main text once navigation, header, footer, aside, script, style and forms are removed",
                DocumentKind.Pdf => "no page has a text layer (a scanned PDF needs OCR first)",
                DocumentKind.Docx => "the document body has no text",
                _ => "the text is empty or only whitespace",
            });
        return extracted with { Text = text };
    }

    /// <summary>
    /// Loads a stored document back by its content hash (text and what was recorded at ingestion), or null when its
    /// text blob is missing (never ingested, or a crash between the two writes).
    /// </summary>
    public async Task<IngestedDocument?> LoadAsync(string contentHash, CancellationToken ct = default)
    {
        var textName = TextBlobName(contentHash);
        await using var download = await _store.GetAsync(textName, ct).ConfigureAwait(false);
        if (download is null) return null;
        using var reader = new StreamReader(download.Content, Utf8NoBom, detectEncodingFromByteOrderMarks: false);
        var text = await reader.ReadToEndAsync(ct).ConfigureAwait(false);
        var m = download.Properties.Metadata;
        var kind = m.TryGetValue(KindKey, out var k) && Enum.TryParse<DocumentKind>(k, out var parsed) ? parsed : DocumentKind.Unknown;
        return new IngestedDocument(
            contentHash,
            kind,
            m.TryGetValue(MediaTypeKey, out var mt) ? mt : DocumentMediaTypes.Of(kind),
            text,
            m.TryGetValue(OriginalLengthKey, out var len) && long.TryParse(len, out var l) ? l : -1,
            m.TryGetValue(TitleKey, out var t) ? Uri.UnescapeDataString(t) : null,
            m.TryGetValue(CharsetKey, out var cs) ? cs : null,
            m.TryGetValue(FileNameKey, out var fn) ? Uri.UnescapeDataString(fn) : "",
            OriginalBlobName(contentHash),
            textName,
            AlreadyStored: true);
    }

    private async Task<IngestedDocument> StoreAsync(string hash, ReadOnlyMemory<byte> original, string fileName, ExtractedDocument extracted, CancellationToken ct)
    {
        var originalName = OriginalBlobName(hash);
        var textName = TextBlobName(hash);
        var metadata = new Dictionary<string, string>
        {
            [KindKey] = extracted.Kind.ToString(),
            [MediaTypeKey] = extracted.MediaType,
            [OriginalLengthKey] = original.Length.ToString(System.Globalization.CultureInfo.InvariantCulture),
            [FileNameKey] = Uri.EscapeDataString(Truncate(fileName)),
        };
        if (extracted.Charset is not null) metadata[CharsetKey] = extracted.Charset;
        if (extracted.Title is not null) metadata[TitleKey] = Uri.EscapeDataString(Truncate(extracted.Title));
        var options = new BlobPutOptions { ContentHash = "sha256:" + hash, Metadata = metadata };

        var createdOriginal = await _store.PutIfNotExistsAsync(originalName, DocumentIngestorStreams.AsStream(original), options, ct).ConfigureAwait(false);
        bool createdText;
        try
        {
            var textBytes = Utf8NoBom.GetBytes(extracted.Text);
            createdText = await _store.PutIfNotExistsAsync(textName, new MemoryStream(textBytes, writable: false), options, ct).ConfigureAwait(false);
        }
        catch when (createdOriginal)
        {
            // Leave no orphan: the original without its text would look half-ingested. CancellationToken.None so a
            // cancelled ingestion still cleans up. (A concurrent ingestion of the same bytes that saw our original as
            // existing will write its own text and then find the original gone; it re-ingests on its next attempt.)
            try { await _store.DeleteAsync(originalName, CancellationToken.None).ConfigureAwait(false); }
            catch (Exception deleteError) { LogCleanupFailed(_logger, originalName, deleteError); }
            throw;
        }
        var already = !createdOriginal && !createdText;
        LogIngested(_logger, fileName, extracted.Kind, hash, original.Length, extracted.Text.Length, already);
        return new IngestedDocument(hash, extracted.Kind, extracted.MediaType, extracted.Text, original.Length, extracted.Title,
            extracted.Charset, fileName, originalName, textName, already);
    }

    private async Task<ReadOnlyMemory<byte>> ReadBoundedAsync(Stream content, string fileName, CancellationToken ct)
    {
        long? known = null;
        if (content.CanSeek)
        {
            known = content.Length - content.Position;
            if (known > _options.MaxBytes)
                throw Rejected(fileName, DocumentKind.Unknown, DocumentRejectionReason.TooLarge, $"{known} bytes, over the limit of {_options.MaxBytes} bytes");
        }
        // Never trust a stream to be as short as it says; read at most MaxBytes + 1 to learn that it is too long.
        var limit = _options.MaxBytes + 1;
        using var buffer = new MemoryStream(known is { } k ? (int)Math.Min(k, int.MaxValue) : 81920);
        var chunk = ArrayPool<byte>.Shared.Rent(81920);
        try
        {
            int read;
            while ((read = await content.ReadAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, limit - buffer.Length)), ct).ConfigureAwait(false)) > 0)
            {
                buffer.Write(chunk, 0, read);
                if (buffer.Length >= limit)
                    throw Rejected(fileName, DocumentKind.Unknown, DocumentRejectionReason.TooLarge, $"more than {_options.MaxBytes} bytes (the limit)");
            }
        }
        finally { ArrayPool<byte>.Shared.Return(chunk); }
        return buffer.GetBuffer().AsMemory(0, (int)buffer.Length);
    }

    internal static DocumentRejectedException Rejected(string fileName, DocumentKind kind, DocumentRejectionReason reason, string detail, Exception? inner = null) =>
        new(fileName, kind, reason, detail, inner);

    private static string ValidateHash(string contentHash)
    {
        ArgumentNullException.ThrowIfNull(contentHash);
        if (contentHash.Length != 64 || !contentHash.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f'))
            throw new ArgumentException($"content hash '{contentHash}' is not 64 lower-case hex digits (SHA-256)", nameof(contentHash));
        return contentHash;
    }

    /// <summary>Cuts to the metadata length without splitting a surrogate pair (EscapeDataString needs whole pairs).</summary>
    private static string Truncate(string s)
    {
        if (s.Length <= MaxMetadataTextChars) return s;
        var end = char.IsHighSurrogate(s[MaxMetadataTextChars - 1]) ? MaxMetadataTextChars - 1 : MaxMetadataTextChars;
        return s[..end];
    }

    [LoggerMessage(1, LogLevel.Information, "Document {FileName} ({Kind}) ingested as {ContentHash}: {OriginalBytes} bytes, {TextChars} chars of text, already stored: {AlreadyStored}")]
    private static partial void LogIngested(ILogger logger, string fileName, DocumentKind kind, string contentHash, long originalBytes, int textChars, bool alreadyStored);

    [LoggerMessage(2, LogLevel.Warning, "Could not delete {BlobName} after its text failed to store; it is an orphan until the document is ingested again")]
    private static partial void LogCleanupFailed(ILogger logger, string blobName, Exception error);
}

/// <summary>What extraction found, before storage.</summary>
/// <param name="Kind">The detected format.</param>
/// <param name="Text">The extracted text ('\n' line ends, trimmed).</param>
/// <param name="Title">The document's own title, if it has one.</param>
/// <param name="Charset">The charset text was decoded with (text and HTML), else null.</param>
public sealed record ExtractedDocument(DocumentKind Kind, string Text, string? Title, string? Charset)
{
    public string MediaType => DocumentMediaTypes.Of(Kind);
}

namespace Actors.Grains.Ingestion;

/// <summary>Why a document was refused. Each value has one fixed explanation in <see cref="DocumentRejectedException.Describe"/>.</summary>
public enum DocumentRejectionReason
{
    /// <summary>Zero bytes.</summary>
    Empty,
    /// <summary>More bytes than <see cref="IngestionOptions.MaxBytes"/>.</summary>
    TooLarge,
    /// <summary>Binary (non-text) data where text was expected or declared, or a binary format we do not read.</summary>
    Binary,
    /// <summary>A file that ends before its format says it should (a PDF without its final %%EOF).</summary>
    Truncated,
    /// <summary>A password-protected PDF that cannot be opened without the password.</summary>
    Encrypted,
    /// <summary>Malformed content: a PDF or DOCX that its parser cannot read, text that is not valid in any charset we try.</summary>
    Corrupt,
    /// <summary>A DOCX whose zip expands past the limits of <see cref="IngestionOptions"/> (uncompressed size, ratio, entry count).</summary>
    ZipBomb,
    /// <summary>The format was read but holds no text (HTML with only navigation, a scanned PDF without a text layer, whitespace).</summary>
    NoText,
    /// <summary>The extracted text is longer than <see cref="IngestionOptions.MaxExtractedChars"/>.</summary>
    TextTooLong,
    /// <summary>A well-formed container of a kind we do not read (a zip or Office file that is not a DOCX).</summary>
    Unsupported,
}

/// <summary>
/// A document that ingestion refuses. Thrown before anything is written to the blob store, so a rejected document
/// leaves no blob behind. The message names the file, the detected format, the reason and the detail
/// (offset, size or limit) that decided it.
/// </summary>
public sealed class DocumentRejectedException : Exception
{
    public DocumentRejectedException(string fileName, DocumentKind format, DocumentRejectionReason reason, string detail, Exception? inner = null)
        : base($"document '{fileName}' ({format}) rejected: {Describe(reason)}: {detail}", inner)
    {
        FileName = fileName;
        Format = format;
        Reason = reason;
        Detail = detail;
    }

    /// <summary>The file name the caller gave.</summary>
    public string FileName { get; }

    /// <summary>The format detected (or declared) when the document was refused; Unknown when refused before detection.</summary>
    public DocumentKind Format { get; }

    public DocumentRejectionReason Reason { get; }

    /// <summary>The specific finding: offsets, sizes, limits, the parser's own message.</summary>
    public string Detail { get; }

    /// <summary>One line saying what <paramref name="reason"/> means, for messages and UIs.</summary>
    public static string Describe(DocumentRejectionReason reason) => reason switch
    {
        DocumentRejectionReason.Empty => "the input is empty",
        DocumentRejectionReason.TooLarge => "the input is over the size limit",
        DocumentRejectionReason.Binary => "binary (non-text) data",
        DocumentRejectionReason.Truncated => "the file is truncated",
        DocumentRejectionReason.Encrypted => "the document is encrypted",
        DocumentRejectionReason.Corrupt => "the file is corrupt",
        DocumentRejectionReason.ZipBomb => "the archive expands past the safety limits (zip bomb)",
        DocumentRejectionReason.NoText => "no text found",
        DocumentRejectionReason.TextTooLong => "the extracted text is over the length limit",
        DocumentRejectionReason.Unsupported => "not a supported document format",
        _ => reason.ToString(),
    };
}

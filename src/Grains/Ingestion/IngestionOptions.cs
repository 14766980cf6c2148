namespace Actors.Grains.Ingestion;

/// <summary>
/// Limits of <see cref="DocumentIngestor"/>. Every limit is checked before anything is written, and before a
/// parser is allowed to allocate from a size the document declares.
/// </summary>
public sealed class IngestionOptions
{
    /// <summary>Default <see cref="MaxBytes"/>: 64 MiB, far above any text document a model can read (a 128K-token document is ~0.5 MB of text).</summary>
    public const long DefaultMaxBytes = 64L * 1024 * 1024;

    /// <summary>Default <see cref="MaxExtractedChars"/>: 16 Mi chars, about 4M tokens, beyond any plan's reach but bounded in memory (32 MB as UTF-16).</summary>
    public const int DefaultMaxExtractedChars = 16 * 1024 * 1024;

    /// <summary>Default <see cref="MaxDocxUncompressedBytes"/>: 256 MiB of XML and media expanded from the zip.</summary>
    public const long DefaultMaxDocxUncompressedBytes = 256L * 1024 * 1024;

    /// <summary>
    /// Default <see cref="MaxDocxCompressionRatio"/>: 200. Word XML deflates ~5-20x and very repetitive XML ~100x;
    /// zip bombs reach 1000x and more (deflate's ceiling is ~1032x per layer).
    /// </summary>
    public const double DefaultMaxDocxCompressionRatio = 200;

    /// <summary>Default <see cref="MaxDocxEntries"/>: 10,000 zip entries (a typical DOCX has 10-30; many images make a few hundred).</summary>
    public const int DefaultMaxDocxEntries = 10_000;

    /// <summary>
    /// Entries smaller than this (uncompressed) are not held to the ratio limit: a few KB of zeros compress
    /// 1000x yet do no harm, and small parts of real documents do that.
    /// </summary>
    public const long DefaultDocxRatioCheckMinBytes = 1024 * 1024;

    /// <summary>Largest input accepted, in bytes; larger is <see cref="DocumentRejectionReason.TooLarge"/>.</summary>
    public long MaxBytes { get; set; } = DefaultMaxBytes;

    /// <summary>Longest extracted text accepted, in UTF-16 chars; longer is <see cref="DocumentRejectionReason.TextTooLong"/>.</summary>
    public int MaxExtractedChars { get; set; } = DefaultMaxExtractedChars;

    /// <summary>Most bytes the zip entries of a DOCX may expand to, all entries together.</summary>
    public long MaxDocxUncompressedBytes { get; set; } = DefaultMaxDocxUncompressedBytes;

    /// <summary>Highest uncompressed/compressed ratio of one DOCX zip entry of at least <see cref="DocxRatioCheckMinBytes"/>.</summary>
    public double MaxDocxCompressionRatio { get; set; } = DefaultMaxDocxCompressionRatio;

    /// <summary>Most entries a DOCX zip may have.</summary>
    public int MaxDocxEntries { get; set; } = DefaultMaxDocxEntries;

    /// <summary>See <see cref="DefaultDocxRatioCheckMinBytes"/>.</summary>
    public long DocxRatioCheckMinBytes { get; set; } = DefaultDocxRatioCheckMinBytes;

    /// <summary>Throws ArgumentOutOfRangeException naming the first setting that is not positive.</summary>
    public void Validate()
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxBytes, nameof(MaxBytes));
        // The whole input is held in one array (hashing, PDF parsing), so it must fit one.
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxBytes, Array.MaxLength - 1L, nameof(MaxBytes));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxExtractedChars, nameof(MaxExtractedChars));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxDocxUncompressedBytes, nameof(MaxDocxUncompressedBytes));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxDocxCompressionRatio, nameof(MaxDocxCompressionRatio));
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(MaxDocxEntries, nameof(MaxDocxEntries));
        ArgumentOutOfRangeException.ThrowIfNegative(DocxRatioCheckMinBytes, nameof(DocxRatioCheckMinBytes));
    }
}

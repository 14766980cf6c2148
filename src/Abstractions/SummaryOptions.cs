namespace Actors.Abstractions;

/// <summary>How a summary is written.</summary>
[GenerateSerializer]
public enum SummaryStyle
{
    /// <summary>Flowing prose.</summary>
    Abstract = 0,
    /// <summary>A list of bullet points.</summary>
    Bullets = 1,
}

/// <summary>
/// What a summarization job is asked for. Two submissions of one document with equal options are the same job.
/// <paramref name="TargetWords"/>: the final summary's length in words (approximate).
/// <paramref name="Language"/>: the output language in words ("French"); null writes in the document's language.
/// <paramref name="Focus"/>: an optional question the summary should answer.
/// <paramref name="ChunkTokens"/>: map-reduce chunk size in tokens; null lets the planner size chunks from the context.
/// <paramref name="OverlapTokens"/>: tokens each chunk repeats from the end of the previous one.
/// </summary>
[GenerateSerializer, Immutable]
public sealed record SummaryOptions(
    [property: Id(0)] int TargetWords = SummaryOptions.DefaultTargetWords,
    [property: Id(1)] SummaryStyle Style = SummaryStyle.Abstract,
    [property: Id(2)] string? Language = null,
    [property: Id(3)] string? Focus = null,
    [property: Id(4)] int? ChunkTokens = null,
    [property: Id(5)] int OverlapTokens = SummaryOptions.DefaultOverlapTokens)
{
    public const int DefaultTargetWords = 200;
    public const int DefaultOverlapTokens = 64;
    public const int MaxTargetWords = 20_000;
    public const int MaxTextLength = 2_000;

    /// <summary>Throws ArgumentException naming the field that is out of range.</summary>
    public SummaryOptions Validate()
    {
        if (TargetWords is < 1 or > MaxTargetWords)
            throw new ArgumentException($"SummaryOptions.TargetWords must be in 1..{MaxTargetWords}, got {TargetWords}");
        if (!Enum.IsDefined(Style)) throw new ArgumentException($"SummaryOptions.Style {(int)Style} is not Abstract (0) or Bullets (1)");
        if (Language is { Length: 0 or > MaxTextLength }) throw new ArgumentException($"SummaryOptions.Language must be 1..{MaxTextLength} characters or null");
        if (Focus is { Length: 0 or > MaxTextLength }) throw new ArgumentException($"SummaryOptions.Focus must be 1..{MaxTextLength} characters or null");
        if (ChunkTokens is < 64) throw new ArgumentException($"SummaryOptions.ChunkTokens must be at least 64 or null, got {ChunkTokens}");
        if (OverlapTokens < 0 || (ChunkTokens is { } c && OverlapTokens >= c / 2))
            throw new ArgumentException($"SummaryOptions.OverlapTokens must be >= 0 and below half of ChunkTokens, got {OverlapTokens}");
        return this;
    }
}

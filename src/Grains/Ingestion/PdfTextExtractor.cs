using System.Text;
using UglyToad.PdfPig;
using UglyToad.PdfPig.Content;
using UglyToad.PdfPig.DocumentLayoutAnalysis;
using UglyToad.PdfPig.DocumentLayoutAnalysis.PageSegmenter;
using UglyToad.PdfPig.DocumentLayoutAnalysis.ReadingOrderDetector;
using UglyToad.PdfPig.Exceptions;

namespace Actors.Grains.Ingestion;

/// <summary>
/// PDF text in reading order with PdfPig: letters → words (PdfPig's default extractor) → blocks (recursive X-Y cut) →
/// reading order (column-wise spatial rules, so a two-column page reads the left column first). A block's lines
/// join into one paragraph; blocks and pages are separated by blank lines.
/// </summary>
internal static class PdfTextExtractor
{
    /// <summary>The last "%%EOF" must lie within this many bytes of the end (trailing junk after it is common).</summary>
    private const int EofWindow = 1024;

    // Word extraction: the default extractor (content order + gaps) took 5 ms a page where the nearest-neighbour
    // extractor took 37 ms (50 lines of Helvetica, loaded 2-core box); the X-Y cut that follows still separates
    // columns, so the faster one is used. One thread each: the silo's cores belong to inference.
    private static readonly RecursiveXYCut Segmenter = new(new RecursiveXYCut.RecursiveXYCutOptions { MaxDegreeOfParallelism = 1 });
    private static readonly UnsupervisedReadingOrderDetector Order = new(5, UnsupervisedReadingOrderDetector.SpatialReasoningRules.ColumnWise, useRenderingOrder: true);

    public static ExtractedDocument Extract(ReadOnlyMemory<byte> content, string fileName, int maxChars, CancellationToken ct)
    {
        if (content.Span[..Math.Min(content.Length, 1024)].IndexOf("%PDF-"u8) < 0)
            throw DocumentIngestor.Rejected(fileName, DocumentKind.Pdf, DocumentRejectionReason.Corrupt,
                "no %PDF- header in the first 1024 bytes: the name or media type says PDF, the content does not");
        var tail = content.Span[Math.Max(0, content.Length - EofWindow)..];
        if (tail.LastIndexOf("%%EOF"u8) < 0)
            throw DocumentIngestor.Rejected(fileName, DocumentKind.Pdf, DocumentRejectionReason.Truncated,
                $"no %%EOF marker in the last {Math.Min(EofWindow, content.Length)} bytes (the file ends at byte {content.Length}); was the upload cut short?");
        try
        {
            using var pdf = PdfDocument.Open(content, new ParsingOptions { UseLenientParsing = true, SkipMissingFonts = true });
            var text = new ParagraphWriter(maxChars, fileName, DocumentKind.Pdf);
            for (var p = 1; p <= pdf.NumberOfPages; p++)
            {
                ct.ThrowIfCancellationRequested();
                Page page;
                try { page = pdf.GetPage(p); }
                catch (Exception e) when (e is not (OperationCanceledException or PdfDocumentEncryptedException or DocumentRejectedException))
                {
                    throw DocumentIngestor.Rejected(fileName, DocumentKind.Pdf, DocumentRejectionReason.Corrupt, $"page {p} of {pdf.NumberOfPages} cannot be read: {e.Message}", e);
                }
                AppendPage(page, text);
            }
            var title = pdf.Information.Title;
            return new ExtractedDocument(DocumentKind.Pdf, text.ToString(), string.IsNullOrWhiteSpace(title) ? null : title.Trim(), null);
        }
        catch (PdfDocumentEncryptedException e)
        {
            throw DocumentIngestor.Rejected(fileName, DocumentKind.Pdf, DocumentRejectionReason.Encrypted,
                $"the PDF is password-protected and cannot be read without its password ({e.Message})", e);
        }
        catch (Exception e) when (e is not (OperationCanceledException or DocumentRejectedException))
        {
            // PdfPig reports malformed structure with several exception types (PdfDocumentFormatException,
            // InvalidOperationException, ArgumentOutOfRangeException from bad offsets...): all mean "cannot read".
            throw DocumentIngestor.Rejected(fileName, DocumentKind.Pdf, DocumentRejectionReason.Corrupt, $"PdfPig cannot read it: {e.GetType().Name}: {e.Message}", e);
        }
    }

    private static void AppendPage(Page page, ParagraphWriter text)
    {
        if (page.Letters.Count == 0) return;
        var words = page.GetWords().Where(w => !string.IsNullOrWhiteSpace(w.Text)).ToList();
        if (words.Count == 0) return;
        var blocks = Segmenter.GetBlocks(words);
        var ordered = Order.Get(blocks.ToList());
        text.Break();
        foreach (var block in ordered) text.Paragraph(JoinLines(block));
    }

    /// <summary>The lines of a block as one paragraph; a line ending in '-' joins the next without a space.</summary>
    private static string JoinLines(TextBlock block)
    {
        var sb = new StringBuilder();
        foreach (var line in block.TextLines)
        {
            var t = TextNormalizer.CollapseWhitespace(line.Text);
            if (t.Length == 0) continue;
            if (sb.Length > 0 && sb[^1] != '-') sb.Append(' ');
            sb.Append(t);
        }
        return sb.ToString();
    }
}

using System.Text;
using System.Text.RegularExpressions;
using DocumentFormat.OpenXml;
using DocumentFormat.OpenXml.Packaging;
using DocumentFormat.OpenXml.Wordprocessing;

namespace Actors.Grains.Ingestion;

/// <summary>
/// DOCX body text with the Open XML SDK, after <see cref="DocxZipGuard"/> has bounded the zip. Paragraphs are
/// separated by blank lines; headings become "#"-prefixed lines (level from the outline level or the
/// "Heading N"/"Title" style); list items "- " lines; each table row one line of cells joined by " | ".
/// </summary>
internal static partial class DocxTextExtractor
{
    private static ReadOnlySpan<byte> Ole2Magic => [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];

    public static ExtractedDocument Extract(ReadOnlyMemory<byte> content, string fileName, IngestionOptions options, CancellationToken ct)
    {
        if (content.Span.StartsWith(Ole2Magic))
        {
            // Word saves a password-protected .docx as an OLE2 compound file holding a stream named
            // "EncryptedPackage" (MS-OFFCRYPTO); directory entry names are UTF-16LE.
            var encrypted = content.Span.IndexOf(System.Text.Encoding.Unicode.GetBytes("EncryptedPackage")) >= 0;
            throw DocumentIngestor.Rejected(fileName, DocumentKind.Docx, encrypted ? DocumentRejectionReason.Encrypted : DocumentRejectionReason.Unsupported,
                encrypted
                    ? "a password-protected Word document (OLE2 container with an EncryptedPackage stream); remove the password and upload again"
                    : "an OLE2 compound file (legacy .doc or another old Office format), not a .docx zip; save it as .docx");
        }
        DocxZipGuard.Check(content, fileName, options, ct);
        try
        {
            var settings = new OpenSettings { MaxCharactersInPart = options.MaxDocxUncompressedBytes };
            using var doc = WordprocessingDocument.Open(DocumentIngestorStreams.AsStream(content), false, settings);
            var main = doc.MainDocumentPart
                ?? throw DocumentIngestor.Rejected(fileName, DocumentKind.Docx, DocumentRejectionReason.Unsupported, "the package has no main document part (an Office file, but not a Word document)");
            var body = main.Document?.Body
                ?? throw DocumentIngestor.Rejected(fileName, DocumentKind.Docx, DocumentRejectionReason.Corrupt, "word/document.xml has no <w:body>");
            var styles = StyleNames(main);
            var writer = new ParagraphWriter(options.MaxExtractedChars, fileName, DocumentKind.Docx);
            string? styledTitle = null;
            WriteBlocks(body.ChildElements, writer, styles, ref styledTitle, ct);
            var title = doc.PackageProperties.Title;
            return new ExtractedDocument(DocumentKind.Docx, writer.ToString(), string.IsNullOrWhiteSpace(title) ? styledTitle : title.Trim(), null);
        }
        catch (OpenXmlPackageException e) when (e.Message.Contains("content type", StringComparison.OrdinalIgnoreCase) || e.Message.Contains("main part", StringComparison.OrdinalIgnoreCase))
        {
            throw DocumentIngestor.Rejected(fileName, DocumentKind.Docx, DocumentRejectionReason.Unsupported, $"not a Word document: {e.Message}", e);
        }
        catch (Exception e) when (e is not (OperationCanceledException or DocumentRejectedException))
        {
            // OpenXmlPackageException, FileFormatException (no [Content_Types].xml), XmlException (malformed part),
            // InvalidDataException: the package cannot be read.
            throw DocumentIngestor.Rejected(fileName, DocumentKind.Docx, DocumentRejectionReason.Corrupt, $"the Open XML SDK cannot read it: {e.GetType().Name}: {e.Message}", e);
        }
    }

    private static void WriteBlocks(IEnumerable<OpenXmlElement> elements, ParagraphWriter writer, IReadOnlyDictionary<string, string> styles, ref string? styledTitle, CancellationToken ct)
    {
        foreach (var element in elements)
        {
            switch (element)
            {
                case Paragraph p:
                    WriteParagraph(p, writer, styles, ref styledTitle);
                    break;
                case Table t:
                    ct.ThrowIfCancellationRequested();
                    writer.Break();
                    foreach (var row in t.Elements<TableRow>())
                    {
                        var cells = row.Elements<TableCell>().Select(c => TextNormalizer.CollapseWhitespace(string.Join(' ', c.Descendants<Paragraph>().Select(ParagraphText))));
                        writer.Paragraph(string.Join(" | ", cells), tight: true);
                    }
                    writer.Break();
                    break;
                case SdtBlock sdt when sdt.SdtContentBlock is { } sdtContent:
                    WriteBlocks(sdtContent.ChildElements, writer, styles, ref styledTitle, ct);
                    break;
                case CustomXmlBlock custom:
                    WriteBlocks(custom.ChildElements, writer, styles, ref styledTitle, ct);
                    break;
            }
        }
    }

    private static void WriteParagraph(Paragraph p, ParagraphWriter writer, IReadOnlyDictionary<string, string> styles, ref string? styledTitle)
    {
        var text = ParagraphText(p).Trim();
        if (text.Length == 0) return;
        var props = p.ParagraphProperties;
        var styleId = props?.ParagraphStyleId?.Val?.Value;
        var styleName = styleId is not null && styles.TryGetValue(styleId, out var n) ? n : styleId;
        var level = HeadingLevel(props?.OutlineLevel?.Val?.Value, styleId, styleName);
        if (string.Equals(styleName, "Title", StringComparison.OrdinalIgnoreCase))
        {
            styledTitle ??= text;
            level = 1;
        }
        if (level > 0)
        {
            writer.Paragraph(new string('#', level) + " " + text);
        }
        else if (props?.NumberingProperties is { } numbering)
        {
            // Numbered and bulleted items alike: the numbering definitions (numbering.xml) are not resolved.
            var depth = Math.Clamp(numbering.NumberingLevelReference?.Val?.Value ?? 0, 0, 8);
            writer.Paragraph(new string(' ', 2 * depth) + "- " + text, tight: true);
        }
        else
        {
            writer.Break();
            writer.Paragraph(text);
        }
    }

    /// <summary>1-9 for a heading, 0 otherwise: the paragraph's outline level (0-based in the XML), else a "heading N" style.</summary>
    private static int HeadingLevel(int? outlineLevel, string? styleId, string? styleName)
    {
        if (outlineLevel is >= 0 and <= 8) return outlineLevel.Value + 1;
        foreach (var s in new[] { styleName, styleId })
        {
            if (s is null) continue;
            var m = HeadingStyle().Match(s);
            if (m.Success) return int.Parse(m.Groups[1].ValueSpan, provider: System.Globalization.CultureInfo.InvariantCulture);
        }
        return 0;
    }

    /// <summary>The visible text of a paragraph: runs' text, tabs, breaks; not deleted text, field codes or mc:Fallback copies.</summary>
    private static string ParagraphText(Paragraph p)
    {
        var sb = new StringBuilder();
        Append(p, sb);
        return sb.ToString();

        static void Append(OpenXmlElement e, StringBuilder sb)
        {
            foreach (var child in e.ChildElements)
            {
                switch (child)
                {
                    case Text t: sb.Append(t.Text); break;
                    case TabChar: sb.Append('\t'); break;
                    case Break or CarriageReturn: sb.Append('\n'); break;
                    case NoBreakHyphen: sb.Append('-'); break;
                    // Text boxes appear twice (mc:Choice and the older mc:Fallback); read the first only.
                    case var f when f.LocalName == "Fallback": break;
                    default: Append(child, sb); break;
                }
            }
        }
    }

    /// <summary>Style id → style name ("Heading1" → "heading 1"; localized Word versions give ids like "berschrift1" but keep the English built-in name).</summary>
    private static Dictionary<string, string> StyleNames(MainDocumentPart main)
    {
        var map = new Dictionary<string, string>(StringComparer.Ordinal);
        var styles = main.StyleDefinitionsPart?.Styles;
        if (styles is null) return map;
        foreach (var style in styles.Elements<Style>())
            if (style.StyleId?.Value is { } id && style.StyleName?.Val?.Value is { } name)
                map[id] = name;
        return map;
    }

    [GeneratedRegex(@"^heading\s*([1-9])$", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex HeadingStyle();
}

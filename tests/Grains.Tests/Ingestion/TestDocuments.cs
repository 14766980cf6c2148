using System.IO.Compression;
using System.Text;
using DocumentFormat.OpenXml;
using DocumentFormat.OpenXml.Packaging;
using DocumentFormat.OpenXml.Wordprocessing;
using PdfPageSize = UglyToad.PdfPig.Content.PageSize;
using UglyToad.PdfPig.Core;
using UglyToad.PdfPig.Fonts.Standard14Fonts;
using UglyToad.PdfPig.Writer;

namespace Actors.Grains.Tests.Ingestion;

/// <summary>Documents made in code for the ingestion tests, so no binary fixture is committed.</summary>
internal static class TestDocuments
{
    /// <summary>A PDF with one page per entry of <paramref name="pages"/>; each page's lines are drawn top-down at x = 50, 14pt apart.</summary>
    public static byte[] Pdf(string? title, params string[][] pages)
    {
        var builder = new PdfDocumentBuilder();
        if (title is not null) builder.DocumentInformation.Title = title;
        var font = builder.AddStandard14Font(Standard14Font.Helvetica);
        foreach (var lines in pages)
        {
            var page = builder.AddPage(PdfPageSize.A4);
            for (var i = 0; i < lines.Length; i++) page.AddText(lines[i], 12, new PdfPoint(50, 780 - 14 * i), font);
        }
        return builder.Build();
    }

    /// <summary>
    /// A two-column page whose right column is drawn first in the content stream, so only layout analysis (not
    /// content order) reads the left column first.
    /// </summary>
    public static byte[] TwoColumnPdf(string[] left, string[] right)
    {
        var builder = new PdfDocumentBuilder();
        var font = builder.AddStandard14Font(Standard14Font.Helvetica);
        var page = builder.AddPage(PdfPageSize.A4);
        for (var i = 0; i < right.Length; i++) page.AddText(right[i], 10, new PdfPoint(320, 780 - 12 * i), font);
        for (var i = 0; i < left.Length; i++) page.AddText(left[i], 10, new PdfPoint(50, 780 - 12 * i), font);
        return builder.Build();
    }

    /// <summary>A one-page PDF without any text (a rectangle only): what a scanned document without OCR looks like to a text extractor.</summary>
    public static byte[] PdfWithoutText()
    {
        var builder = new PdfDocumentBuilder();
        var page = builder.AddPage(PdfPageSize.A4);
        page.DrawRectangle(new PdfPoint(50, 50), 200, 100);
        return builder.Build();
    }

    /// <summary>
    /// A hand-written PDF 1.4 whose trailer names a Standard security handler (RC4, revision 2) with /O and /U
    /// entries that match no password, so the empty user password fails: a password-protected document.
    /// The xref offsets are computed, so the file is otherwise well-formed.
    /// </summary>
    public static byte[] EncryptedPdf()
    {
        var o = new string('A', 64);   // 32 bytes as hex
        var u = new string('B', 64);
        const string content = "BT /F1 12 Tf 72 720 Td (Secret text) Tj ET";
        var objects = new[]
        {
            "<< /Type /Catalog /Pages 2 0 R >>",
            "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
            $"<< /Length {content.Length} >>\nstream\n{content}\nendstream",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            $"<< /Filter /Standard /V 1 /R 2 /O <{o}> /U <{u}> /P -44 >>",
        };
        var sb = new StringBuilder("%PDF-1.4\n");
        var offsets = new List<int>();
        for (var i = 0; i < objects.Length; i++)
        {
            offsets.Add(sb.Length);
            sb.Append($"{i + 1} 0 obj\n{objects[i]}\nendobj\n");
        }
        var xref = sb.Length;
        sb.Append($"xref\n0 {objects.Length + 1}\n0000000000 65535 f \n");
        foreach (var off in offsets) sb.Append($"{off:D10} 00000 n \n");
        var id = new string('C', 32);
        sb.Append($"trailer\n<< /Size {objects.Length + 1} /Root 1 0 R /Encrypt 6 0 R /ID [<{id}> <{id}>] >>\nstartxref\n{xref}\n%%EOF\n");
        return Encoding.ASCII.GetBytes(sb.ToString());
    }

    /// <summary>One paragraph of a test DOCX: plain, a heading (style "Heading{level}"), or a list item.</summary>
    public sealed record DocxParagraph(string Text, int HeadingLevel = 0, bool ListItem = false, int ListLevel = 0);

    /// <summary>
    /// A DOCX made with the Open XML SDK: the paragraphs, then a table of <paramref name="table"/> rows, then
    /// <paramref name="after"/>. Heading styles are defined in a styles part ("Heading1" → "heading 1").
    /// </summary>
    public static byte[] Docx(string? title, IEnumerable<DocxParagraph> paragraphs, string[][]? table = null, IEnumerable<DocxParagraph>? after = null)
    {
        using var ms = new MemoryStream();
        using (var doc = WordprocessingDocument.Create(ms, WordprocessingDocumentType.Document))
        {
            var main = doc.AddMainDocumentPart();
            var stylesPart = main.AddNewPart<StyleDefinitionsPart>();
            stylesPart.Styles = new Styles(Enumerable.Range(1, 3).Select(l =>
                new Style(new StyleName { Val = $"heading {l}" }) { StyleId = $"Heading{l}", Type = StyleValues.Paragraph }));
            var body = new Body();
            foreach (var p in paragraphs) body.Append(Paragraph(p));
            if (table is not null)
                body.Append(new Table(table.Select(row => new TableRow(row.Select(cell => new TableCell(new Paragraph(new Run(new Text(cell))))))).Cast<OpenXmlElement>()));
            foreach (var p in after ?? []) body.Append(Paragraph(p));
            main.Document = new Document(body);
            if (title is not null) doc.PackageProperties.Title = title;
        }
        return ms.ToArray();
    }

    private static Paragraph Paragraph(DocxParagraph p)
    {
        var props = new ParagraphProperties();
        if (p.HeadingLevel > 0) props.ParagraphStyleId = new ParagraphStyleId { Val = $"Heading{p.HeadingLevel}" };
        if (p.ListItem) props.NumberingProperties = new NumberingProperties(new NumberingLevelReference { Val = p.ListLevel }, new NumberingId { Val = 1 });
        // Two runs, the second with a tab, to check that runs join without spaces and tabs survive.
        var half = p.Text.Length / 2;
        return new Paragraph(props, new Run(new Text(p.Text[..half]) { Space = SpaceProcessingModeValues.Preserve }), new Run(new Text(p.Text[half..]) { Space = SpaceProcessingModeValues.Preserve }));
    }

    /// <summary>
    /// A zip that looks like a DOCX (content types, rels, word/document.xml) plus an entry "word/media/bomb.bin"
    /// of <paramref name="zeroBytes"/> zeros, which deflate ~1000x.
    /// </summary>
    public static byte[] ZipBombDocx(long zeroBytes)
    {
        var docx = Docx(null, [new("Harmless looking text.")]);
        using var ms = new MemoryStream();
        ms.Write(docx);
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Update, leaveOpen: true))
        {
            using var s = zip.CreateEntry("word/media/bomb.bin", CompressionLevel.Optimal).Open();
            var zeros = new byte[1 << 20];
            for (long left = zeroBytes; left > 0; left -= zeros.Length) s.Write(zeros, 0, (int)Math.Min(zeros.Length, left));
        }
        return ms.ToArray();
    }

    /// <summary>A DOCX with <paramref name="extra"/> more small entries.</summary>
    public static byte[] DocxWithManyEntries(int extra)
    {
        var docx = Docx(null, [new("Text.")]);
        using var ms = new MemoryStream();
        ms.Write(docx);
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Update, leaveOpen: true))
            for (var i = 0; i < extra; i++)
            {
                using var s = zip.CreateEntry($"customXml/item{i}.xml").Open();
                s.Write("<a/>"u8);
            }
        return ms.ToArray();
    }

    /// <summary>A DOCX whose document.xml holds <paramref name="paragraphs"/> distinct sentences (compresses only a few times).</summary>
    public static byte[] LargeDocx(int paragraphs) =>
        Docx(null, Enumerable.Range(0, paragraphs).Select(i => new DocxParagraph($"Paragraph {i} has the checksum {unchecked((uint)(i * 2654435761u)):X8} and {(uint)(i * 40503u + 17):X8}.")));

    /// <summary>
    /// A DOCX whose entry "word/media/lie.bin" holds <paramref name="actualBytes"/> zeros while its local and
    /// central zip headers claim only <paramref name="declaredBytes"/>: sizes in a zip are the sender's word.
    /// </summary>
    public static byte[] DocxWithLyingSize(int actualBytes, int declaredBytes)
    {
        var docx = Docx(null, [new("Text.")]);
        using var ms = new MemoryStream();
        ms.Write(docx);
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Update, leaveOpen: true))
        {
            using var s = zip.CreateEntry("word/media/lie.bin", CompressionLevel.Optimal).Open();
            s.Write(new byte[actualBytes]);
        }
        var bytes = ms.ToArray();
        var name = "word/media/lie.bin"u8;
        var patched = 0;
        // Local file header (PK 03 04): uncompressed size at +22, name length at +26, name at +30.
        // Central directory header (PK 01 02): uncompressed size at +24, name length at +28, name at +46.
        for (var i = 0; i + 46 < bytes.Length; i++)
        {
            if (bytes[i] != 'P' || bytes[i + 1] != 'K') continue;
            if (bytes[i + 2] == 3 && bytes[i + 3] == 4 && bytes.AsSpan(i + 30).StartsWith(name))
            {
                BitConverter.TryWriteBytes(bytes.AsSpan(i + 22, 4), declaredBytes);
                patched++;
            }
            else if (bytes[i + 2] == 1 && bytes[i + 3] == 2 && bytes.AsSpan(i + 46).StartsWith(name))
            {
                BitConverter.TryWriteBytes(bytes.AsSpan(i + 24, 4), declaredBytes);
                patched++;
            }
        }
        if (patched != 2) throw new InvalidOperationException($"patched {patched} headers, expected 2");
        return bytes;
    }

    /// <summary>A valid zip with a text file but no [Content_Types].xml: not an Office document.</summary>
    public static byte[] PlainZip()
    {
        using var ms = new MemoryStream();
        using (var zip = new ZipArchive(ms, ZipArchiveMode.Create, leaveOpen: true))
        {
            using var s = zip.CreateEntry("readme.txt").Open();
            s.Write("hello"u8);
        }
        return ms.ToArray();
    }
}

using System.Text;
using Actors.Grains.Ingestion;
using Actors.Grains.Storage;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;

namespace Actors.Grains.Tests.Ingestion;

/// <summary>Wiring and scale: DI registration, Orleans serialization of the result, limits on legitimate large inputs.</summary>
public sealed class IngestionApiTests : IngestionTestBase
{
    [Fact]
    public void IngestedDocument_round_trips_through_the_orleans_serializer()
    {
        var serializer = new ServiceCollection().AddSerializer(b => b.AddAssembly(typeof(IngestedDocument).Assembly)).BuildServiceProvider().GetRequiredService<Serializer>();
        var doc = new IngestedDocument(new string('a', 64), DocumentKind.Docx, DocumentMediaTypes.Docx, "text\n\nmore \u6771\u4eac", 1234, "Title", null, "f.docx",
            "documents/" + new string('a', 64), "documents/" + new string('a', 64) + ".txt", AlreadyStored: true);
        Assert.Equal(doc, serializer.Deserialize<IngestedDocument>(serializer.SerializeToArray(doc)));
    }

    [Fact]
    public async Task AddDocumentIngestion_registers_an_ingestor_over_the_registered_store()
    {
        var services = new ServiceCollection().AddLogging().AddSingleton<IBlobStore>(Store)
            .AddDocumentIngestion(o => o.MaxBytes = 10);
        using var sp = services.BuildServiceProvider();
        var ingestor = sp.GetRequiredService<DocumentIngestor>();
        Assert.Equal(10, ingestor.Options.MaxBytes);
        await ingestor.IngestAsync("0123456789"u8.ToArray(), "ten.txt", null, Ct);
        await Assert.ThrowsAsync<DocumentRejectedException>(() => ingestor.IngestAsync("0123456789A"u8.ToArray(), "eleven.txt", null, Ct));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ServiceCollection().AddDocumentIngestion(o => o.MaxDocxEntries = 0));
    }

    [Fact]
    public void Defaults_are_the_documented_constants()
    {
        var o = new IngestionOptions();
        Assert.Equal(64L << 20, o.MaxBytes);
        Assert.Equal(IngestionOptions.DefaultMaxExtractedChars, o.MaxExtractedChars);
        Assert.Equal(IngestionOptions.DefaultMaxDocxUncompressedBytes, o.MaxDocxUncompressedBytes);
        Assert.Equal(IngestionOptions.DefaultMaxDocxCompressionRatio, o.MaxDocxCompressionRatio);
        Assert.Equal(IngestionOptions.DefaultMaxDocxEntries, o.MaxDocxEntries);
    }

    [Fact]
    public async Task A_real_sized_docx_passes_the_zip_guard_with_default_limits()
    {
        // 40,000 paragraphs (~5 MB of XML): the ratio of real Word XML stays far below the bomb limit.
        var docx = TestDocuments.LargeDocx(40_000);
        var doc = await IngestAsync(docx, "large.docx");
        var paragraphs = doc.Text.Split("\n\n");
        Assert.Equal(40_000, paragraphs.Length);
        Assert.Equal($"Paragraph 39999 has the checksum {unchecked((uint)(39999 * 2654435761u)):X8} and {(uint)(39999 * 40503u + 17):X8}.", paragraphs[^1]);
    }

    [Fact]
    public async Task Pdf_pages_come_out_in_page_order()
    {
        var pages = Enumerable.Range(1, 30).Select(p => new[] { $"This is page {p}." }).ToArray();
        var doc = await IngestAsync(TestDocuments.Pdf(null, pages), "thirty.pdf");
        Assert.Equal(string.Join("\n\n", Enumerable.Range(1, 30).Select(p => $"This is page {p}.")), doc.Text);
    }

    [Fact]
    public async Task Html_text_limit_stops_extraction_early()
    {
        var html = "<html><body><main>" + string.Concat(Enumerable.Range(0, 5000).Select(i => $"<p>Paragraph number {i}.</p>")) + "</main></body></html>";
        var e = await RejectedAsync(Encoding.UTF8.GetBytes(html), "long.html", DocumentRejectionReason.TextTooLong, options: new IngestionOptions { MaxExtractedChars = 1000 });
        Assert.Contains("over 1000 chars", e.Detail);
    }

    [Fact]
    public void Media_types_and_extensions_map_to_kinds()
    {
        Assert.Equal(DocumentKind.Html, DocumentMediaTypes.FromMediaType("Text/HTML; charset=UTF-8"));
        Assert.Equal(DocumentKind.Docx, DocumentMediaTypes.FromMediaType(DocumentMediaTypes.Docx));
        Assert.Null(DocumentMediaTypes.FromMediaType("application/octet-stream"));
        Assert.Equal(DocumentKind.Markdown, DocumentMediaTypes.FromFileName("README.MD"));
        Assert.Equal(DocumentKind.Pdf, DocumentMediaTypes.FromFileName("a.b.pdf"));
        Assert.Null(DocumentMediaTypes.FromFileName("noext"));
    }
}

using System.Text;
using Actors.Grains.Ingestion;
using Actors.Grains.Tests.Storage;

namespace Actors.Grains.Tests.Ingestion;

/// <summary>Every bad input: a DocumentRejectedException with the right reason and file name, and an empty blob store.</summary>
public sealed class RejectionTests : IngestionTestBase
{
    [Fact]
    public async Task Empty_input()
    {
        var e = await RejectedAsync([], "empty.txt", DocumentRejectionReason.Empty);
        Assert.Equal(DocumentKind.Unknown, e.Format);
        Assert.Contains("0 bytes", e.Message);
    }

    [Fact]
    public async Task Whitespace_only_text_has_no_text()
    {
        var e = await RejectedAsync(" \r\n\t\n "u8.ToArray(), "blank.txt", DocumentRejectionReason.NoText);
        Assert.Equal(DocumentKind.PlainText, e.Format);
    }

    [Fact]
    public async Task Png_given_as_text_is_binary()
    {
        byte[] png = [0x89, (byte)'P', (byte)'N', (byte)'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, (byte)'I', (byte)'H', (byte)'D', (byte)'R'];
        var e = await RejectedAsync(png, "photo.txt", DocumentRejectionReason.Binary, "text/plain");
        Assert.Equal(DocumentKind.PlainText, e.Format);
        Assert.Contains("PNG", e.Detail);
    }

    [Fact]
    public async Task Random_bytes_are_binary()
    {
        var bytes = new byte[4096];
        new Random(42).NextBytes(bytes);
        bytes[0] = (byte)'x'; // no known magic
        var e = await RejectedAsync(bytes, "data.txt", DocumentRejectionReason.Binary);
        Assert.Contains("NUL byte at offset", e.Detail);
    }

    [Fact]
    public async Task Random_bytes_without_nul_are_binary_by_control_characters()
    {
        var bytes = new byte[4096];
        new Random(7).NextBytes(bytes);
        for (var i = 0; i < bytes.Length; i++) if (bytes[i] == 0) bytes[i] = 1;
        bytes[0] = (byte)'x';
        var e = await RejectedAsync(bytes, "data.md", DocumentRejectionReason.Binary);
        Assert.Contains("control characters", e.Detail);
    }

    [Fact]
    public async Task Oversized_bytes_are_rejected_before_reading_them()
    {
        var e = await RejectedAsync(new byte[2001], "big.txt", DocumentRejectionReason.TooLarge, options: new IngestionOptions { MaxBytes = 2000 });
        Assert.Contains("2001 bytes, over the limit of 2000", e.Detail);
    }

    [Fact]
    public async Task Oversized_non_seekable_stream_is_read_only_to_the_limit()
    {
        var source = new GeneratedStream(1_000_000);
        var ingestor = Ingestor(new IngestionOptions { MaxBytes = 100_000 });
        var e = await Assert.ThrowsAsync<DocumentRejectedException>(() => ingestor.IngestAsync(source, "stream.txt", null, Ct));
        Assert.Equal(DocumentRejectionReason.TooLarge, e.Reason);
        Assert.Equal(100_001, source.Position); // stopped at limit + 1, did not drain the source
        Assert.Empty(await BlobNamesAsync());
    }

    [Fact]
    public async Task Oversized_seekable_stream_is_rejected_by_its_length()
    {
        var source = new MemoryStream(new byte[5000]);
        var ingestor = Ingestor(new IngestionOptions { MaxBytes = 4096 });
        var e = await Assert.ThrowsAsync<DocumentRejectedException>(() => ingestor.IngestAsync(source, "seek.txt", null, Ct));
        Assert.Equal(DocumentRejectionReason.TooLarge, e.Reason);
        Assert.Equal(0, source.Position);
    }

    [Fact]
    public async Task Text_over_the_extracted_length_limit()
    {
        var e = await RejectedAsync(Encoding.ASCII.GetBytes(new string('a', 500)), "long.txt", DocumentRejectionReason.TextTooLong,
            options: new IngestionOptions { MaxExtractedChars = 100 });
        Assert.Contains("500 chars", e.Detail);
    }

    [Fact]
    public async Task Html_with_only_navigation_has_no_main_text()
    {
        const string html = "<html><head><title>Menu</title><script>x()</script></head><body><header>Logo</header><nav><a>Home</a></nav><footer>(c)</footer></body></html>";
        var e = await RejectedAsync(Encoding.UTF8.GetBytes(html), "menu.html", DocumentRejectionReason.NoText);
        Assert.Equal(DocumentKind.Html, e.Format);
        Assert.Contains("no main text", e.Detail);
    }

    [Fact]
    public async Task Truncated_pdf()
    {
        var pdf = TestDocuments.Pdf(null, ["Some text on a page."], ["More text."]);
        var cut = pdf[..(pdf.Length * 6 / 10)];
        var e = await RejectedAsync(cut, "cut.pdf", DocumentRejectionReason.Truncated);
        Assert.Equal(DocumentKind.Pdf, e.Format);
        Assert.Contains($"ends at byte {cut.Length}", e.Detail);
    }

    [Fact]
    public async Task Pdf_with_junk_after_its_final_eof_is_still_read()
    {
        // Some producers and upload paths append bytes after %%EOF; readers accept that, and so do we.
        var pdf = TestDocuments.Pdf(null, ["Trailing junk is fine."]).Concat(Encoding.ASCII.GetBytes(new string('\n', 300) + "junk")).ToArray();
        var doc = await IngestAsync(pdf, "junk.pdf");
        Assert.Equal("Trailing junk is fine.", doc.Text);
    }

    [Fact]
    public async Task Encrypted_pdf()
    {
        var e = await RejectedAsync(TestDocuments.EncryptedPdf(), "secret.pdf", DocumentRejectionReason.Encrypted);
        Assert.Equal(DocumentKind.Pdf, e.Format);
        Assert.Contains("password", e.Detail);
    }

    [Fact]
    public async Task Corrupt_pdf()
    {
        var bytes = Encoding.ASCII.GetBytes("%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >>\ngarbage that is no PDF structure at all\n%%EOF\n");
        var e = await RejectedAsync(bytes, "broken.pdf", DocumentRejectionReason.Corrupt);
        Assert.Equal(DocumentKind.Pdf, e.Format);
    }

    [Fact]
    public async Task Declared_pdf_without_pdf_header_is_not_read_as_text()
    {
        var e = await Assert.ThrowsAsync<DocumentRejectedException>(() => IngestAsync("just some words %%EOF"u8.ToArray(), "fake.pdf"));
        Assert.Equal(DocumentKind.Pdf, e.Format);
        Assert.Equal(DocumentRejectionReason.Corrupt, e.Reason);
        Assert.Empty(await BlobNamesAsync());
    }

    [Fact]
    public async Task Pdf_without_a_text_layer_has_no_text()
    {
        var e = await RejectedAsync(TestDocuments.PdfWithoutText(), "scan.pdf", DocumentRejectionReason.NoText);
        Assert.Contains("OCR", e.Detail);
    }

    [Fact]
    public async Task Zip_bomb_docx_by_compression_ratio_with_default_limits()
    {
        // 32 MiB of zeros deflate to ~32 KB: ratio ~1000, far past the default 200.
        var bomb = TestDocuments.ZipBombDocx(32L << 20);
        Assert.True(bomb.Length < 200_000, $"bomb is {bomb.Length} bytes");
        var e = await RejectedAsync(bomb, "bomb.docx", DocumentRejectionReason.ZipBomb);
        Assert.Equal(DocumentKind.Docx, e.Format);
        Assert.Contains("word/media/bomb.bin", e.Detail);
        Assert.Contains("ratio", e.Detail);
    }

    [Fact]
    public async Task Zip_bomb_docx_by_total_uncompressed_size()
    {
        var docx = TestDocuments.LargeDocx(40_000); // ~3 MB of XML, compressing only a few times
        var e = await RejectedAsync(docx, "large.docx", DocumentRejectionReason.ZipBomb,
            options: new IngestionOptions { MaxDocxUncompressedBytes = 1 << 20 });
        Assert.Contains("over the limit of 1048576", e.Detail);
    }

    [Fact]
    public async Task Zip_bomb_docx_by_entry_count()
    {
        var docx = TestDocuments.DocxWithManyEntries(200);
        var e = await RejectedAsync(docx, "many.docx", DocumentRejectionReason.ZipBomb, options: new IngestionOptions { MaxDocxEntries = 100 });
        Assert.Contains("over the limit of 100", e.Detail);
    }

    [Fact]
    public async Task Docx_whose_headers_understate_an_entry_never_inflates_past_the_declared_size()
    {
        // 4 MiB of zeros whose zip headers claim 1000 bytes. The declared-size checks pass; what matters is that
        // nothing (the guard, the Open XML SDK) ever inflates more than the headers say. The runtime's zip reader
        // stops at the declared size, and the guard's counter would reject the entry if it did not.
        var docx = TestDocuments.DocxWithLyingSize(4 << 20, 1000);
        using (var zip = new System.IO.Compression.ZipArchive(new MemoryStream(docx)))
        {
            using var s = zip.GetEntry("word/media/lie.bin")!.Open();
            var read = 0L;
            var buffer = new byte[65536];
            int n;
            while ((n = s.Read(buffer)) > 0) read += n;
            Assert.Equal(1000, read);
        }
        var doc = await IngestAsync(docx, "liar.docx");
        Assert.Equal("Text.", doc.Text);
    }

    [Fact]
    public async Task Corrupt_docx_that_is_zip_magic_then_garbage()
    {
        var bytes = new byte[600];
        new Random(3).NextBytes(bytes);
        "PK\u0003\u0004"u8.CopyTo(bytes);
        var e = await RejectedAsync(bytes, "garbage.docx", DocumentRejectionReason.Corrupt);
        Assert.Equal(DocumentKind.Docx, e.Format);
    }

    [Theory]
    [InlineData(true, DocumentRejectionReason.Encrypted)]
    [InlineData(false, DocumentRejectionReason.Unsupported)]
    public async Task Ole2_file_named_docx_is_encrypted_or_legacy(bool withEncryptedPackage, DocumentRejectionReason reason)
    {
        // The 8-byte compound-file signature, padding, and (for the encrypted case) the UTF-16LE directory name
        // "EncryptedPackage" that MS-OFFCRYPTO puts in a password-protected .docx.
        var bytes = new byte[1536];
        byte[] magic = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
        magic.CopyTo(bytes, 0);
        if (withEncryptedPackage) Encoding.Unicode.GetBytes("EncryptedPackage").CopyTo(bytes, 1024);
        var e = await RejectedAsync(bytes, "locked.docx", reason);
        Assert.Equal(DocumentKind.Docx, e.Format);
    }

    [Fact]
    public async Task Ole2_file_without_a_docx_name_is_binary()
    {
        var bytes = new byte[600];
        byte[] magic = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
        magic.CopyTo(bytes, 0);
        var e = await RejectedAsync(bytes, "old.doc", DocumentRejectionReason.Binary);
        Assert.Contains("legacy .doc", e.Detail);
    }

    [Fact]
    public async Task Truncated_docx_is_corrupt()
    {
        var docx = TestDocuments.Docx(null, [new("Some text.")]);
        await RejectedAsync(docx[..(docx.Length / 2)], "half.docx", DocumentRejectionReason.Corrupt);
    }

    [Fact]
    public async Task Zip_that_is_not_an_office_document()
    {
        var e = await Assert.ThrowsAsync<DocumentRejectedException>(() => IngestAsync(TestDocuments.PlainZip(), "archive.docx"));
        Assert.True(e.Reason is DocumentRejectionReason.Corrupt or DocumentRejectionReason.Unsupported, e.Message);
        Assert.Empty(await BlobNamesAsync());
    }

    [Fact]
    public async Task Rejection_message_names_file_format_and_reason()
    {
        var e = await RejectedAsync(TestDocuments.EncryptedPdf(), "q3 figures.pdf", DocumentRejectionReason.Encrypted);
        Assert.StartsWith("document 'q3 figures.pdf' (Pdf) rejected: the document is encrypted: ", e.Message);
    }
}

using System.Text;
using Actors.Grains.Ingestion;

namespace Actors.Grains.Tests.Ingestion;

/// <summary>Text bytes in each charset decode back to the string they were made from, and the charset is named.</summary>
public sealed class CharsetDetectionTests : IngestionTestBase
{
    // Latin with diacritics, a dash, CJK and an emoji (a surrogate pair in UTF-16).
    private const string Multilingual = "Gr\u00fc\u00dfe, na\u00efve caf\u00e9 \u2014 \u6771\u4eac \U0001F30A\nSecond line.";

    public static TheoryData<string, byte[], string> Unicode => new()
    {
        { "utf-8", Encoding.UTF8.GetBytes(Multilingual), "utf-8" },
        { "utf-8 BOM", [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(Multilingual)], "utf-8" },
        { "utf-16LE BOM", [0xFF, 0xFE, .. Encoding.Unicode.GetBytes(Multilingual)], "utf-16LE" },
        { "utf-16BE BOM", [0xFE, 0xFF, .. Encoding.BigEndianUnicode.GetBytes(Multilingual)], "utf-16BE" },
        { "utf-16LE no BOM", Encoding.Unicode.GetBytes(Multilingual), "utf-16LE" },
        { "utf-16BE no BOM", Encoding.BigEndianUnicode.GetBytes(Multilingual), "utf-16BE" },
        { "utf-32LE BOM", [0xFF, 0xFE, 0x00, 0x00, .. new UTF32Encoding(false, false).GetBytes(Multilingual)], "utf-32LE" },
    };

    [Theory]
    [MemberData(nameof(Unicode))]
    public async Task Unicode_encodings_decode_to_the_original_text(string label, byte[] bytes, string charset)
    {
        var doc = await IngestAsync(bytes, $"{label.Replace(' ', '-')}.txt");
        Assert.Equal(Multilingual, doc.Text);
        Assert.Equal(charset, doc.Charset);
    }

    [Fact]
    public async Task Windows_1252_smart_quotes_and_euro_are_decoded()
    {
        const string text = "\u201cSmart quotes\u201d, caf\u00e9 \u2013 \u20ac5 \u2022 na\u00efve";
        var bytes = CodePages.Get(1252).GetBytes(text);
        Assert.Contains((byte)0x93, bytes); // “ is 0x93 in windows-1252 and a C1 control in ISO-8859-1
        var doc = await IngestAsync(bytes, "quotes.txt");
        Assert.Equal(text, doc.Text);
        Assert.Equal("windows-1252", doc.Charset);
    }

    [Fact]
    public async Task Latin1_text_is_read_by_the_single_byte_fallback()
    {
        const string text = "\u00c6r\u00f8sk\u00f8bing, S\u00e3o Paulo, Z\u00fcrich \u00bd \u00a9";
        var doc = await IngestAsync(Encoding.Latin1.GetBytes(text), "places.txt");
        Assert.Equal(text, doc.Text);
        Assert.Equal("windows-1252", doc.Charset);
    }

    [Fact]
    public async Task Declared_charset_is_used_when_bytes_are_not_utf8()
    {
        const string text = "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440"; // Привет, мир
        var bytes = CodePages.Get(28595).GetBytes(text); // ISO-8859-5
        var doc = await IngestAsync(bytes, "hello.txt", "text/plain; charset=ISO-8859-5");
        Assert.Equal(text, doc.Text);
        Assert.Equal("iso-8859-5", doc.Charset);
    }

    [Fact]
    public async Task Valid_utf8_wins_over_a_wrong_declaration()
    {
        var doc = await IngestAsync(Encoding.UTF8.GetBytes("caf\u00e9"), "c.txt", "text/plain; charset=iso-8859-1");
        Assert.Equal("caf\u00e9", doc.Text);
        Assert.Equal("utf-8", doc.Charset);
    }

    [Fact]
    public async Task Ascii_is_reported_as_utf8()
    {
        var doc = await IngestAsync("plain ascii"u8.ToArray(), "a.txt");
        Assert.Equal("plain ascii", doc.Text);
        Assert.Equal("utf-8", doc.Charset);
    }

    [Fact]
    public async Task Bom_that_lies_is_corrupt()
    {
        // UTF-16LE BOM then an unpaired high surrogate (D800) followed by 'A'.
        byte[] bytes = [0xFF, 0xFE, (byte)'h', 0, (byte)'i', 0, 0x00, 0xD8, (byte)'A', 0];
        var e = await RejectedAsync(bytes, "lie.txt", DocumentRejectionReason.Corrupt);
        Assert.Contains("utf-16LE", e.Detail);
    }
}

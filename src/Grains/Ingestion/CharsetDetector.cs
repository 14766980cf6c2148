using System.Text;
using System.Text.RegularExpressions;

namespace Actors.Grains.Ingestion;

/// <summary>
/// Decodes text bytes whose charset is not known for sure. Order: a byte-order mark (UTF-8, UTF-16 LE/BE,
/// UTF-32 LE/BE); UTF-16 without a BOM (zero high bytes in alternate positions); binary refusal (NUL bytes);
/// strict UTF-8 (pure ASCII is reported as utf-8); a charset the caller declared (HTTP "charset=" or HTML meta);
/// finally windows-1252, which every byte sequence decodes in and which is what "ISO-8859-1" means in practice
/// (WHATWG maps that label to windows-1252). The decoded text is then refused as binary when more than
/// <see cref="MaxControlFraction"/> of it is control characters.
/// </summary>
internal static partial class CharsetDetector
{
    /// <summary>Above this fraction of C0/C1 control characters (tab, line ends, form feed and ESC excepted) text is binary.</summary>
    public const double MaxControlFraction = 0.01;

    /// <summary>Bytes examined for the UTF-16-without-BOM test.</summary>
    private const int Utf16SampleBytes = 64 * 1024;

    static CharsetDetector() => Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);

    private static Encoding Strict(Encoding e) => Encoding.GetEncoding(e.CodePage, EncoderFallback.ExceptionFallback, DecoderFallback.ExceptionFallback);

    /// <summary>Decodes <paramref name="bytes"/>; returns the text (BOM removed) and the charset's web name.</summary>
    /// <exception cref="DocumentRejectedException">Binary data, or bytes invalid in the charset their BOM names.</exception>
    public static (string Text, string Charset) Decode(ReadOnlySpan<byte> bytes, string fileName, DocumentKind kind, string? declaredCharset)
    {
        var (text, charset) = DecodeRaw(bytes, fileName, kind, declaredCharset);
        RefuseControlHeavy(text, fileName, kind, charset);
        return (text, charset);
    }

    private static (string Text, string Charset) DecodeRaw(ReadOnlySpan<byte> b, string fileName, DocumentKind kind, string? declaredCharset)
    {
        // BOMs. UTF-32 LE's BOM starts with UTF-16 LE's, so it is tested first.
        if (b.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xFE, 0x00, 0x00])) return StrictDecode(b[4..], new UTF32Encoding(false, false, true), "utf-32LE", fileName, kind, 4);
        if (b.StartsWith((ReadOnlySpan<byte>)[0x00, 0x00, 0xFE, 0xFF])) return StrictDecode(b[4..], new UTF32Encoding(true, false, true), "utf-32BE", fileName, kind, 4);
        if (b.StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF])) return StrictDecode(b[3..], new UTF8Encoding(false, true), "utf-8", fileName, kind, 3);
        if (b.StartsWith((ReadOnlySpan<byte>)[0xFF, 0xFE])) return StrictDecode(b[2..], new UnicodeEncoding(false, false, true), "utf-16LE", fileName, kind, 2);
        if (b.StartsWith((ReadOnlySpan<byte>)[0xFE, 0xFF])) return StrictDecode(b[2..], new UnicodeEncoding(true, false, true), "utf-16BE", fileName, kind, 2);

        if (GuessUtf16WithoutBom(b) is { } bigEndian)
        {
            var enc = new UnicodeEncoding(bigEndian, false, true);
            try { return (enc.GetString(b[..(b.Length & ~1)]), bigEndian ? "utf-16BE" : "utf-16LE"); }
            catch (DecoderFallbackException) { /* not UTF-16 after all: the NUL test below calls it binary */ }
        }

        var nul = b.IndexOf((byte)0);
        if (nul >= 0)
            throw DocumentIngestor.Rejected(fileName, kind, DocumentRejectionReason.Binary,
                $"NUL byte at offset {nul}: binary data, not text in any charset tried (BOM, UTF-16, UTF-8, windows-1252)");

        if (!b.ContainsAnyExceptInRange((byte)0, (byte)0x7F)) return (Encoding.ASCII.GetString(b), "utf-8");
        if (System.Text.Unicode.Utf8.IsValid(b)) return (Encoding.UTF8.GetString(b), "utf-8");

        if (declaredCharset is not null && TryGetEncoding(declaredCharset) is { } declared && declared.CodePage != Encoding.UTF8.CodePage)
        {
            try { return (Strict(declared).GetString(b), declared.WebName); }
            catch (DecoderFallbackException) { /* the declaration is wrong; fall back */ }
        }
        var cp1252 = Encoding.GetEncoding(1252);
        return (cp1252.GetString(b), cp1252.WebName);
    }

    private static (string, string) StrictDecode(ReadOnlySpan<byte> b, Encoding enc, string name, string fileName, DocumentKind kind, int bomLength)
    {
        try { return (enc.GetString(b), name); }
        catch (DecoderFallbackException e)
        {
            throw DocumentIngestor.Rejected(fileName, kind, DocumentRejectionReason.Corrupt,
                $"the byte-order mark says {name} but the bytes near offset {bomLength + Math.Max(0, e.Index)} are not valid {name}", e);
        }
    }

    /// <summary>
    /// UTF-16 of mostly-Latin text has a zero in every other byte; 8-bit text has none. True = big-endian
    /// (zeros at even offsets), false = little-endian, null = not UTF-16.
    /// </summary>
    private static bool? GuessUtf16WithoutBom(ReadOnlySpan<byte> b)
    {
        if (b.Length < 4) return null;
        var sample = b[..(Math.Min(b.Length, Utf16SampleBytes) & ~1)];
        int zeroEven = 0, zeroOdd = 0;
        for (var i = 0; i < sample.Length; i += 2)
        {
            if (sample[i] == 0) zeroEven++;
            if (sample[i + 1] == 0) zeroOdd++;
        }
        var pairs = sample.Length / 2;
        // Thresholds: at least 30% of code units have a zero high byte (Latin, digits, spaces, line ends), and the
        // other position almost never holds a zero (UTF-16 text has no U+0000 and few U+xx00).
        if (zeroOdd >= pairs * 0.3 && zeroEven <= pairs * 0.02) return false;
        if (zeroEven >= pairs * 0.3 && zeroOdd <= pairs * 0.02) return true;
        return null;
    }

    private static void RefuseControlHeavy(string text, string fileName, DocumentKind kind, string charset)
    {
        var controls = 0;
        var first = -1;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if ((c < 0x20 && c is not ('\t' or '\n' or '\r' or '\f' or '\v' or '\u001B')) || c is >= '\u007F' and <= '\u009F' || c == '\0')
            {
                controls++;
                if (first < 0) first = i;
            }
        }
        if (controls > 0 && controls > text.Length * MaxControlFraction)
            throw DocumentIngestor.Rejected(fileName, kind, DocumentRejectionReason.Binary,
                $"{controls} of {text.Length} characters decoded as {charset} are control characters (first at char {first}): binary data, not text");
    }

    /// <summary>The encoding for a charset label, or null when .NET knows no such label.</summary>
    public static Encoding? TryGetEncoding(string label)
    {
        try { return Encoding.GetEncoding(label.Trim().Trim('"', '\'')); }
        catch (ArgumentException) { return null; }
    }

    /// <summary>The "charset=" parameter of a media type, or null.</summary>
    public static string? CharsetOfMediaType(string? mediaType)
    {
        if (mediaType is null) return null;
        var m = MediaTypeCharset().Match(mediaType);
        return m.Success ? m.Groups[1].Value : null;
    }

    /// <summary>The charset an HTML document declares in its first 1024 bytes (meta charset or http-equiv), or null.</summary>
    public static string? CharsetOfHtmlMeta(ReadOnlySpan<byte> html)
    {
        var head = Encoding.Latin1.GetString(html[..Math.Min(html.Length, 1024)]);
        var m = MetaCharset().Match(head);
        return m.Success ? m.Groups[1].Value : null;
    }

    [GeneratedRegex(@"charset\s*=\s*[""']?([A-Za-z0-9_\-:.]+)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex MediaTypeCharset();

    [GeneratedRegex(@"<meta\b[^>]*?charset\s*=\s*[""']?([A-Za-z0-9_\-:.]+)", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)]
    private static partial Regex MetaCharset();
}

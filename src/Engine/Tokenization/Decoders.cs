using System.Text;

namespace Actors.Engine.Tokenization;

/// <summary>A tokenizers decoder: turns the list of token strings into a list of strings that are then concatenated.</summary>
internal interface IDecoder
{
    List<string> DecodeChain(List<string> tokens);
}

internal sealed class SequenceDecoder(IReadOnlyList<IDecoder> decoders) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        foreach (var d in decoders) tokens = d.DecodeChain(tokens);
        return tokens;
    }
}

/// <summary>
/// ByteLevel: maps every token's characters back to bytes (a token with a character outside the table, such as an
/// added token, contributes its own UTF-8) and decodes all of them as one UTF-8 string, invalid sequences becoming
/// U+FFFD as Rust's from_utf8_lossy does.
/// </summary>
internal sealed class ByteLevelDecoder : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (var token in tokens)
            if (!ByteLevelAlphabet.TryDecode(token, bytes))
                bytes.AddRange(Encoding.UTF8.GetBytes(token));
        return [Encoding.UTF8.GetString(bytes.ToArray())];
    }
}

/// <summary>
/// ByteFallback: runs of "&lt;0xNN&gt;" tokens become the text of their bytes, or one U+FFFD per byte when those bytes
/// are not valid UTF-8.
/// </summary>
internal sealed class ByteFallbackDecoder : IDecoder
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var pending = new List<byte>();
        foreach (var token in tokens)
        {
            if (TryParseByte(token, out byte b))
            {
                pending.Add(b);
                continue;
            }
            Flush(pending, result);
            result.Add(token);
        }
        Flush(pending, result);
        return result;
    }

    private static void Flush(List<byte> pending, List<string> result)
    {
        if (pending.Count == 0) return;
        try
        {
            result.Add(StrictUtf8.GetString(pending.ToArray()));
        }
        catch (DecoderFallbackException)
        {
            for (int i = 0; i < pending.Count; i++) result.Add("\uFFFD");
        }
        pending.Clear();
    }

    // Rust's u8::from_str_radix(&token[3..5], 16) on a 6-byte "<0x..>" token; it also takes a leading '+'.
    private static bool TryParseByte(string token, out byte value)
    {
        value = 0;
        if (token.Length != 6 || !token.StartsWith("<0x", StringComparison.Ordinal) || token[5] != '>') return false;
        char hi = token[3], lo = token[4];
        if (hi == '+') return TryHex(lo, out value);
        if (!TryHex(hi, out byte h) || !TryHex(lo, out byte l)) return false;
        value = (byte)(h * 16 + l);
        return true;
    }

    private static bool TryHex(char c, out byte v)
    {
        v = c switch
        {
            >= '0' and <= '9' => (byte)(c - '0'),
            >= 'a' and <= 'f' => (byte)(c - 'a' + 10),
            >= 'A' and <= 'F' => (byte)(c - 'A' + 10),
            _ => 255,
        };
        return v != 255;
    }
}

internal sealed class FuseDecoder : IDecoder
{
    public List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
}

/// <summary>Strip: removes up to <c>start</c> leading and <c>stop</c> trailing copies of a character from every token.</summary>
internal sealed class StripDecoder(string content, int start, int stop) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        foreach (var token in tokens)
        {
            // Up to `start` leading and `stop` trailing copies of content, counted in code points like Rust's chars().
            int from = 0;
            for (int i = 0; i < start && from < token.Length && string.CompareOrdinal(token, from, content, 0, content.Length) == 0; i++)
                from += content.Length;
            int to = token.Length;
            for (int i = 0; i < stop && to - content.Length >= from && string.CompareOrdinal(token, to - content.Length, content, 0, content.Length) == 0; i++)
                to -= content.Length;
            result.Add(token[from..to]);
        }
        return result;
    }
}

internal sealed class ReplaceDecoder(CodePointRegex pattern, string content) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens) =>
        tokens.Select(t => ReplaceNormalizer.Replace(pattern, content, t)).ToList();
}

/// <summary>Metaspace: the replacement character becomes a space, except in the first token unless prepend_scheme is never.</summary>
internal sealed class MetaspaceDecoder(char replacement, PrependScheme scheme) : IDecoder
{
    public List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        for (int i = 0; i < tokens.Count; i++)
        {
            var sb = new StringBuilder(tokens[i].Length);
            foreach (char c in tokens[i])
            {
                if (c != replacement) sb.Append(c);
                else if (!(i == 0 && scheme != PrependScheme.Never)) sb.Append(' ');
            }
            result.Add(sb.ToString());
        }
        return result;
    }
}

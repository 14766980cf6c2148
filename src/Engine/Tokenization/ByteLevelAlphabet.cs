using System.Text;

namespace Actors.Engine.Tokenization;

/// <summary>
/// GPT-2's byte-to-character table: each of the 256 byte values gets a printable character so that BPE works on
/// text. Printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other 68 bytes take
/// U+0100, U+0101, ... in byte order.
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly char[] ByteToChar = new char[256];
    private static readonly Dictionary<char, byte> CharToByte = new(256);

    static ByteLevelAlphabet()
    {
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            char c = printable ? (char)b : (char)(256 + next++);
            ByteToChar[b] = c;
            CharToByte[c] = (byte)b;
        }
    }

    /// <summary>The UTF-8 bytes of <paramref name="text"/>, each as its stand-in character.</summary>
    public static string Encode(string text)
    {
        int count = Encoding.UTF8.GetByteCount(text);
        byte[]? rented = count > 512 ? System.Buffers.ArrayPool<byte>.Shared.Rent(count) : null;
        Span<byte> bytes = rented is null ? stackalloc byte[512] : rented;
        bytes = bytes[..Encoding.UTF8.GetBytes(text, bytes)];
        Span<char> chars = count <= 512 ? stackalloc char[count] : new char[count];
        for (int i = 0; i < bytes.Length; i++) chars[i] = ByteToChar[bytes[i]];
        if (rented is not null) System.Buffers.ArrayPool<byte>.Shared.Return(rented);
        return new string(chars);
    }

    /// <summary>Appends the bytes <paramref name="token"/> stands for; false (nothing appended) if a character is not in the table.</summary>
    public static bool TryDecode(string token, List<byte> output)
    {
        foreach (char c in token)
            if (!CharToByte.ContainsKey(c)) return false;
        foreach (char c in token) output.Add(CharToByte[c]);
        return true;
    }
}

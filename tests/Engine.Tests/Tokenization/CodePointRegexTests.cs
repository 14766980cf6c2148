using Actors.Engine.Tokenization;

namespace Actors.Engine.Tests.Tokenization;

/// <summary>The pre-tokenizer regex sees code points, as Oniguruma does, not UTF-16 units.</summary>
public sealed class CodePointRegexTests
{
    private const string Llama3 =
        @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private static string[] Split(string pattern, string text) =>
        new CodePointRegex(pattern).Matches(text).Select(m => text[m.Start..m.End]).ToArray();

    [Fact]
    public void AstralCharactersAreSingleClassMembers()
    {
        // An emoji is one [^\r\n\p{L}\p{N}] character in front of a letter run.
        Assert.Equal(["😀abc"], Split(Llama3, "😀abc"));
        // 𠀀 (U+20000) is a letter.
        Assert.Equal(["a𠀀b", " 𠀀"], Split(Llama3, "a𠀀b 𠀀"));
        // 𝟘..𝟛 (U+1D7D8..) are decimal digits: \p{N}{1,3} counts code points.
        Assert.Equal(["𝟘𝟙𝟚", "𝟛"], Split(Llama3, "𝟘𝟙𝟚𝟛"));
        // Symbols and emoji with modifiers stay one run.
        Assert.Equal(["abc", "😀👍🏽", " ok"], Split(Llama3, "abc😀👍🏽 ok"));
        Assert.Equal(["I", "'M", " here"], Split(Llama3, "I'M here"));
    }

    [Fact]
    public void PossessiveQuantifiersBecomeAtomicGroups()
    {
        Assert.Equal(@"(?>a?)b(?>[xy]+)(?>\p{L}*)(?>(ab){1,3})c+?", CodePointRegex.RewritePossessive(@"a?+b[xy]++\p{L}*+(ab){1,3}+c+?"));
        Assert.Equal(@"[+]\+a+", CodePointRegex.RewritePossessive(@"[+]\+a+"));
        // Possessive: " ?+" may not give back the space, so "  x" splits as " " then " x" either way; a run of letters is atomic.
        string o200k = @"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";
        Assert.Equal(["Hello", " World", "!!", " ", " x"], Split(o200k, "Hello World!!  x"));
    }
}

using System.Text.Json.Nodes;

namespace Actors.Engine.Tests.Tokenization;

/// <summary>
/// Byte-level BPE (Llama 3 / Qwen2 layout) on Data/bytelevel_hand: byte b has id b (its GPT-2 character), then
/// merges by rank 0..7: h+e=256, l+l=257, he+ll=258, hell+o=259, Ġ+w=260, o+r=261, Ġw+or=262, a+ð=263; "Ġworld"=264 is
/// in the vocabulary but no merge makes it. Added: &lt;|endoftext|&gt;=265, &lt;|im_start|&gt;=266, &lt;|im_end|&gt;=267,
/// &lt;|begin_of_text|&gt;=268 (special, the template's bos), &lt;tool&gt;=269 (not special).
/// </summary>
public sealed class ByteLevelBpeTests
{
    private static readonly Actors.Engine.Tokenization.HfTokenizer Tok = TokenizerTestFiles.LoadData("bytelevel_hand");

    [Fact]
    public void MergesApplyInRankOrder()
    {
        // "hello" -> h e l l o -> (h,e)#0 -> he l l o -> (l,l)#1 -> he ll o -> #2 hell o -> #3 hello = 259.
        // " world" -> Ġ w o r l d: (Ġ,w)#4 before (o,r)#5 -> Ġw or l d -> (Ġw,or)#6 -> Ġwor l d = 262 108 100.
        Assert.Equal([259, 262, 108, 100], Tok.Encode("hello world"));
        Assert.Equal([268, 259, 262, 108, 100], Tok.Encode("hello world", addSpecialTokens: true));
    }

    [Fact]
    public void UnmergedBytesAreTheirByteIds()
    {
        // "Hi!" -> H i ! with no merges; ids are the byte values. A space before "!" stays with it (" ?[^\s\p{L}\p{N}]+").
        Assert.Equal([72, 105, 32, 33], Tok.Encode("Hi !"));
        // é is C3 A9 in UTF-8; 😀 is F0 9F 98 80.
        Assert.Equal([0xC3, 0xA9], Tok.Encode("é"));
        Assert.Equal([104, 105, 32, 0xF0, 0x9F, 0x98, 0x80], Tok.Encode("hi 😀"));
    }

    [Fact]
    public void AstralLetterStaysInsideTheLetterRun()
    {
        // 𠀀 (U+20000, F0 A0 80 80) is a letter: "a𠀀b" is one \p{L}+ pre-token, so the merge a+ð (ð = byte F0) applies.
        // Had the regex seen two surrogates, 𠀀 would be its own pre-token and "a" would stay 97.
        Assert.Equal([263, 0xA0, 0x80, 0x80, 98], Tok.Encode("a𠀀b"));
    }

    [Fact]
    public void SpecialTokensAreSplitOutFirst()
    {
        Assert.Equal([266, 117, 115, 101, 114, 10, 104, 105, 267], Tok.Encode("<|im_start|>user\nhi<|im_end|>"));
        // Adjacent to text on both sides, and the longest added token wins at one position.
        Assert.Equal([259, 265, 259], Tok.Encode("hello<|endoftext|>hello"));
    }

    [Fact]
    public void DecodeRoundTripsAndSkipsSpecialTokens()
    {
        foreach (var text in new[] { "hello world", "  two  spaces\n\nand\ttabs", "日本語 😀👍🏽 café", "a𠀀b 𝟘𝟙", "I'm DON'T 12345" })
            Assert.Equal(text, Tok.Decode(Tok.Encode(text)));
        Assert.Equal("<|begin_of_text|>hello", Tok.Decode([268, 259]));
        Assert.Equal("hello", Tok.Decode([268, 259], skipSpecialTokens: true));
        // A non-special added token is kept when skipping.
        Assert.Equal("<tool>hello", Tok.Decode([269, 259], skipSpecialTokens: true));
        // Ids that name no token are left out, as tokenizers does.
        Assert.Equal("hello", Tok.Decode([259, 100_000]));
    }

    [Fact]
    public void IncompleteUtf8DecodesToReplacementCharacter()
    {
        Assert.Equal("\uFFFD", Tok.Decode([0xF0, 0x9F]));
        Assert.Equal("a\uFFFDb", Tok.Decode([97, 0xC3, 98]));
    }

    [Fact]
    public void VocabularyLookups()
    {
        Assert.Equal(270, Tok.VocabSize); // 265 model entries + 5 added tokens
        Assert.Equal(267, Tok.TokenToId("<|im_end|>"));
        Assert.Equal(259, Tok.TokenToId("hello"));
        Assert.Null(Tok.TokenToId("nope"));
        Assert.Equal("Ġwor", Tok.IdToToken(262));
        Assert.Equal("<tool>", Tok.IdToToken(269));
        Assert.Null(Tok.IdToToken(270));
        Assert.True(Tok.IsSpecial(268));
        Assert.False(Tok.IsSpecial(269));
        Assert.False(Tok.IsSpecial(259));
    }

    [Fact]
    public void IgnoreMergesTakesAWholePreTokenFromTheVocabulary()
    {
        var tok = TokenizerJson.Variant("bytelevel_hand", j => j["model"]!["ignore_merges"] = true);
        // "Ġworld" is in the vocabulary, so the pre-token is emitted directly instead of Ġwor l d.
        Assert.Equal([259, 264], tok.Encode("hello world"));
        // "Ġword" is not in the vocabulary: merges as usual.
        Assert.Equal([262, 100], tok.Encode(" word"));
    }

    [Fact]
    public void MergesAsStringsEqualMergesAsPairs()
    {
        var tok = TokenizerJson.Variant("bytelevel_hand", j =>
        {
            var merges = j["model"]!["merges"]!.AsArray();
            var strings = new JsonArray(merges.Select(m => (JsonNode)JsonValue.Create($"{m![0]} {m[1]}")).ToArray());
            j["model"]!["merges"] = strings;
        });
        foreach (var text in new[] { "hello world", "a𠀀b", "hello<|endoftext|>" })
            Assert.Equal(Tok.Encode(text), tok.Encode(text));
    }

    [Fact]
    public void PlainByteLevelPreTokenizerUsesTheGpt2Split()
    {
        var tok = TokenizerJson.Variant("bytelevel_hand", j =>
            j["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["use_regex"] = true });
        Assert.Equal([259, 262, 108, 100], tok.Encode("hello world"));
        // GPT-2's " ?\p{N}+" keeps a whole digit run where Llama 3's \p{N}{1,3} splits it in threes.
        Assert.Equal([49, 50, 51, 52], tok.Encode("1234"));

        var prefixed = TokenizerJson.Variant("bytelevel_hand", j =>
            j["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = true, ["use_regex"] = true });
        // add_prefix_space: "hello" becomes " hello" -> Ġ + hello.
        Assert.Equal([32, 259], prefixed.Encode("hello"));
    }

    [Fact]
    public void TemplateNeedsAddSpecialTokens()
    {
        Assert.Equal([], Tok.Encode(""));
        Assert.Equal([268], Tok.Encode("", addSpecialTokens: true));
    }

    [Fact]
    public void ByteLevelDecoderCharacterTableIsGpt2s()
    {
        // Every single byte token decodes through the table: the bytes 0..127 come back as ASCII.
        for (int b = 0; b < 128; b++)
        {
            Assert.Equal(TokenizerJson.ByteChar(b).ToString(), Tok.IdToToken(b));
            Assert.Equal(((char)b).ToString(), Tok.Decode([b]));
        }
    }

    [Fact]
    public void LoneSurrogatesAreReadAsReplacementCharacter()
    {
        // UTF-8 cannot carry U+D800; it is encoded as U+FFFD (EF BF BD), as .NET's UTF-8 encoder would.
        Assert.Equal([97, 0xEF, 0xBF, 0xBD, 98], Tok.Encode("a\uD800b"));
    }

    [Fact]
    public void ConcurrentEncodingGivesTheSameIds()
    {
        var tok = TokenizerTestFiles.LoadData("bytelevel_trained");
        string[] texts = ["hello world", "the cache page token attention", "日本語 😀 café", "I'm DON'T 12345", "<|im_start|>x<|im_end|>"];
        var expected = texts.Select(t => tok.Encode(t).ToArray()).ToArray();
        var fresh = TokenizerTestFiles.LoadData("bytelevel_trained");
        var results = new int[400][];
        Parallel.For(0, results.Length, i => results[i] = fresh.Encode(texts[i % texts.Length]).ToArray());
        for (int i = 0; i < results.Length; i++) Assert.Equal(expected[i % texts.Length], results[i]);
    }
}

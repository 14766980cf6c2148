using System.Text.Json.Nodes;

namespace Actors.Engine.Tests.Tokenization;

/// <summary>
/// SentencePiece-style BPE (Llama 2 layout) on Data/sentencepiece_hand: &lt;unk&gt;=0, &lt;s&gt;=1, &lt;/s&gt;=2, byte
/// tokens &lt;0xNN&gt;=3+NN, then ▁=259 h=260 e=261 l=262 o=263 w=264 r=265 d=266 and merges by rank 0..9:
/// h+e=267, l+l=268, he+ll=269, hell+o=270, ▁+hello=271, ▁+w=272, o+r=273, ▁w+or=274, l+d=275, ▁wor+ld=276.
/// Added: [X]=277 (lstrip, rstrip), ab=278 (single_word), "foo bar"=279 (normalized). Normalizer: Prepend("▁"),
/// Replace(" ", "▁"); decoder: Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0); template: &lt;s&gt; A.
/// </summary>
public sealed class SentencePieceBpeTests
{
    private static readonly Actors.Engine.Tokenization.HfTokenizer Tok = TokenizerTestFiles.LoadData("sentencepiece_hand");

    [Fact]
    public void WholeTextIsOneWordAfterNormalization()
    {
        // "▁hello▁world": he, ll, hell, hello, ▁hello, then ▁w, or, ▁wor, ld, ▁world by rank.
        Assert.Equal([271, 276], Tok.Encode("hello world"));
        Assert.Equal([1, 271, 276], Tok.Encode("hello world", addSpecialTokens: true));
        Assert.Equal("hello world", Tok.Decode([1, 271, 276], skipSpecialTokens: true));
        // Strip removes one leading space of the whole text only; <s> comes first so nothing is stripped.
        Assert.Equal("<s> hello world", Tok.Decode([1, 271, 276]));
    }

    [Fact]
    public void UnknownCharactersFallBackToUtf8Bytes()
    {
        // é = C3 A9 -> <0xC3>=198 <0xA9>=172; 日 = E6 97 A5; 😀 = F0 9F 98 80.
        Assert.Equal([259, 260, 198, 172], Tok.Encode("hé"));
        Assert.Equal([259, 3 + 0xE6, 3 + 0x97, 3 + 0xA5], Tok.Encode("日"));
        Assert.Equal([259, 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80], Tok.Encode("😀"));
        foreach (var text in new[] { "hé", "日本語", "😀 hello 𠀀", "a  b" })
            Assert.Equal(text, Tok.Decode(Tok.Encode(text)));
    }

    [Fact]
    public void InvalidByteRunsDecodeToOneReplacementPerByte()
    {
        // <0xF0><0x9F> is an incomplete sequence: ByteFallback emits U+FFFD for each byte.
        Assert.Equal("\uFFFD\uFFFD", Tok.Decode([3 + 0xF0, 3 + 0x9F]));
    }

    [Fact]
    public void SpecialTokensSplitBeforeNormalizationAndEachPieceIsPrepended()
    {
        // "hello" between <s> and </s> is normalized on its own, so it gets its own ▁.
        Assert.Equal([1, 271, 2], Tok.Encode("<s>hello</s>"));
        Assert.Equal("hello", Tok.Decode([1, 271, 2], skipSpecialTokens: true));
    }

    [Fact]
    public void AddedTokenFlags()
    {
        // lstrip/rstrip: [X] takes the spaces around it, so "hello" and "world" are pieces of their own.
        Assert.Equal([271, 277, 276], Tok.Encode("hello  [X]  world"));
        // single_word: "ab" inside "cab" is not a match; " cab" is then ▁▁c a b through byte fallback.
        Assert.Equal([278, 259, 259, 3 + 'c', 3 + 'a', 3 + 'b'], Tok.Encode("ab cab"));
        // normalized: "foo bar" is matched as its normalized form "▁foo▁bar".
        Assert.Equal([279], Tok.Encode("foo bar"));
    }

    [Fact]
    public void UnknownTokensFuseWithoutByteFallback()
    {
        var fused = TokenizerJson.Variant("sentencepiece_hand", j => j["model"]!["byte_fallback"] = false);
        Assert.Equal([259, 260, 0, 261], fused.Encode("h😀😀e"));
        var unfused = TokenizerJson.Variant("sentencepiece_hand", j =>
        {
            j["model"]!["byte_fallback"] = false;
            j["model"]!["fuse_unk"] = false;
        });
        Assert.Equal([259, 260, 0, 0, 261], unfused.Encode("h😀😀e"));
    }

    [Fact]
    public void MetaspacePreTokenizerPrependsOnlyAtTheStartOfTheInput()
    {
        var tok = TokenizerTestFiles.LoadData("metaspace_hand");
        Assert.Equal([271, 276], tok.Encode("hello world"));
        // prepend_scheme "first": "hello" after <s> does not start the input, so no ▁ (hello = 270).
        Assert.Equal([1, 270], tok.Encode("<s>hello"));
        var always = TokenizerJson.Variant("metaspace_hand", j => j["pre_tokenizer"]!["prepend_scheme"] = "always");
        Assert.Equal([1, 271], always.Encode("<s>hello"));
        // Older files: add_prefix_space false means never.
        var legacy = TokenizerJson.Variant("metaspace_hand", j =>
        {
            var pre = j["pre_tokenizer"]!.AsObject();
            pre.Remove("prepend_scheme");
            pre["add_prefix_space"] = false;
        });
        Assert.Equal([270], legacy.Encode("hello"));
    }

    [Fact]
    public void VocabularyLookups()
    {
        Assert.Equal(280, Tok.VocabSize); // 277 model entries + [X], ab, "foo bar" (<unk>, <s>, </s> are in the model)
        Assert.Equal(1, Tok.TokenToId("<s>"));
        Assert.Equal(3 + 0x0A, Tok.TokenToId("<0x0A>"));
        Assert.True(Tok.IsSpecial(0));
        Assert.True(Tok.IsSpecial(2));
        Assert.False(Tok.IsSpecial(277));
    }

    [Fact]
    public void TemplateStringShorthandIsAccepted()
    {
        var tok = TokenizerJson.Variant("sentencepiece_hand", j =>
        {
            j["post_processor"]!["single"] = new JsonArray("<s>:0", "$A:0", "</s>");
            j["post_processor"]!["special_tokens"]!["</s>"] =
                new JsonObject { ["id"] = "</s>", ["ids"] = new JsonArray(2), ["tokens"] = new JsonArray("</s>") };
        });
        Assert.Equal([1, 271, 2], tok.Encode("hello", addSpecialTokens: true));
    }
}

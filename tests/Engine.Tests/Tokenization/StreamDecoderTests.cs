namespace Actors.Engine.Tests.Tokenization;

/// <summary>The stream decoder holds back incomplete UTF-8 and yields exactly the text of a full decode.</summary>
public sealed class StreamDecoderTests
{
    [Fact]
    public void ByteLevelCharactersSplitOverTokensComeOutWhole()
    {
        var tok = TokenizerTestFiles.LoadData("bytelevel_hand");
        // No merges among these bytes: 日 (3 bytes), 😀 (4 bytes) and é (2 bytes) arrive one byte token at a time.
        var ids = tok.Encode("日😀é!", addSpecialTokens: true);
        Assert.Equal(1 + 3 + 4 + 2 + 1, ids.Count);
        var decoder = tok.CreateStreamDecoder();
        var pieces = ids.Select(decoder.Push).ToList();
        Assert.Equal(["", "", "", "日", "", "", "", "😀", "", "é", "!"], pieces);
        Assert.Equal("", decoder.Flush());
    }

    [Fact]
    public void ByteFallbackTokensAndStrippedLeadingSpace()
    {
        var tok = TokenizerTestFiles.LoadData("sentencepiece_hand");
        var ids = tok.Encode("hé world", addSpecialTokens: true);
        Assert.Equal([1, 259, 260, 198, 172, 276], ids);
        var decoder = tok.CreateStreamDecoder(skipSpecialTokens: true);
        var pieces = ids.Select(decoder.Push).ToList();
        // "▁" alone decodes to "" (the decoder strips the leading space); <0xC3> waits for <0xA9>; "▁world" keeps its space.
        Assert.Equal(["", "", "h", "", "é", " world"], pieces);
        Assert.Equal(tok.Decode(ids, skipSpecialTokens: true), string.Concat(pieces));
    }

    [Fact]
    public void FlushReturnsWhatWasHeldBack()
    {
        var tok = TokenizerTestFiles.LoadData("sentencepiece_hand");
        var decoder = tok.CreateStreamDecoder();
        Assert.Equal("h", decoder.Push(260));
        Assert.Equal("", decoder.Push(3 + 0xE6)); // first byte of 日
        Assert.Equal("\uFFFD", decoder.Flush());
        // After a flush the decoder starts over.
        Assert.Equal("h", decoder.Push(260));
    }

    [Fact]
    public void SpecialTokensAreKeptWhenAskedFor()
    {
        var tok = TokenizerTestFiles.LoadData("bytelevel_hand");
        var decoder = tok.CreateStreamDecoder(skipSpecialTokens: false);
        Assert.Equal("<|im_start|>", decoder.Push(266));
        Assert.Equal("hello", decoder.Push(259));
    }
}

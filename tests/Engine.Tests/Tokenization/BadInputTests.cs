using System.Text.Json.Nodes;
using Actors.Engine.Model;
using Actors.Engine.Tokenization;

namespace Actors.Engine.Tests.Tokenization;

/// <summary>Malformed or unsupported tokenizer.json gets a ModelFormatException naming the file and the field.</summary>
public sealed class BadInputTests
{
    private static ModelFormatException Fails(string json, string name = "bad/tokenizer.json")
    {
        var e = Assert.Throws<ModelFormatException>(() => HfTokenizer.Parse(json, name));
        Assert.Equal(name, e.File);
        Assert.StartsWith(name + ": ", e.Message);
        return e;
    }

    private static ModelFormatException Fails(Action<JsonObject> edit, string baseName = "sentencepiece_hand")
    {
        var json = TokenizerJson.Read(baseName);
        edit(json);
        return Fails(json.ToJsonString());
    }

    [Fact]
    public void NotJson()
    {
        var e = Fails("{\"model\": {\"type\": \"BPE\", ");
        Assert.Contains("not valid JSON", e.Message);
        Fails("[1, 2]");
    }

    [Fact]
    public void NoModel()
    {
        var e = Fails("{\"version\": \"1.0\", \"added_tokens\": []}");
        Assert.Equal("model", e.Field);
    }

    [Fact]
    public void ModelTypeOtherThanBpe()
    {
        var e = Fails(j => j["model"]!["type"] = "WordPiece");
        Assert.Equal("model.type", e.Field);
        Assert.Contains("model.type 'WordPiece' is not supported", e.Message);
    }

    [Fact]
    public void MergeWithUnknownToken()
    {
        var e = Fails(j => j["model"]!["merges"]!.AsArray().Insert(0, "h zz"));
        Assert.Equal("model.merges[0]", e.Field);
        Assert.Contains("\"zz\"", e.Message);

        var merged = Fails(j => j["model"]!["merges"]!.AsArray().Add("w ▁"));
        Assert.Equal("model.merges[10]", merged.Field);
        Assert.Contains("merged token \"w▁\"", merged.Message);

        var shape = Fails(j => j["model"]!["merges"]!.AsArray().Add("a b c"));
        Assert.Equal("model.merges[10]", shape.Field);
    }

    [Fact]
    public void ByteFallbackWithoutByteTokens()
    {
        var e = Fails(j =>
        {
            var vocab = j["model"]!["vocab"]!.AsObject();
            foreach (var key in vocab.Select(kv => kv.Key).Where(k => k.StartsWith("<0x")).ToList()) vocab.Remove(key);
        });
        Assert.Equal("model.byte_fallback", e.Field);
    }

    [Fact]
    public void BadVocabularyAndComponents()
    {
        Assert.Equal("model.vocab[\"h\"]", Fails(j => j["model"]!["vocab"]!["h"] = -4).Field);
        Assert.Equal("model.unk_token", Fails(j => j["model"]!["unk_token"] = "<missing>").Field);
        Assert.Equal("pre_tokenizer.type", Fails(j => j["pre_tokenizer"] = new JsonObject { ["type"] = "BertPreTokenizer" }).Field);
        Assert.Equal("normalizer.normalizers[0].type",
            Fails(j => j["normalizer"]!["normalizers"]![0] = new JsonObject { ["type"] = "BertNormalizer" }).Field);
        Assert.Equal("decoder.decoders[3].start", Fails(j => j["decoder"]!["decoders"]![3]!["start"] = "x").Field);
        Assert.Equal("post_processor.single[0].SpecialToken.id",
            Fails(j => j["post_processor"]!["single"]![0]!["SpecialToken"]!["id"] = "<bos>").Field);
        Assert.Equal("added_tokens[1].content", Fails(j => j["added_tokens"]![1]!.AsObject().Remove("content")).Field);
        Assert.Equal("model.dropout", Fails(j => j["model"]!["dropout"] = 0.1).Field);
    }

    [Fact]
    public void UnsupportedRegex()
    {
        var e = Fails(j => j["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"] = new JsonObject { ["Regex"] = "(?<=" },
            baseName: "bytelevel_hand");
        Assert.Equal("pre_tokenizer.pretokenizers[0].pattern.Regex", e.Field);
    }

    [Fact]
    public void MissingFile()
    {
        string path = Path.Combine(Path.GetTempPath(), $"no-such-{Guid.NewGuid():N}", "tokenizer.json");
        var e = Assert.Throws<ModelFormatException>(() => HfTokenizer.Load(path));
        Assert.Equal(path, e.File);
    }
}

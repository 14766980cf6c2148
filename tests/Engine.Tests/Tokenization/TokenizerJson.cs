using System.Text.Json.Nodes;
using Actors.Engine.Tokenization;

namespace Actors.Engine.Tests.Tokenization;

/// <summary>Variants of the Data/ tokenizers, edited as JSON and parsed.</summary>
internal static class TokenizerJson
{
    public static JsonObject Read(string name) =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(TokenizerTestFiles.DataDir, name, "tokenizer.json")))!.AsObject();

    public static HfTokenizer Parse(JsonObject json, string name = "variant.json") => HfTokenizer.Parse(json.ToJsonString(), name);

    public static HfTokenizer Variant(string name, Action<JsonObject> edit)
    {
        var json = Read(name);
        edit(json);
        return Parse(json);
    }

    /// <summary>GPT-2's byte-to-character table, written out independently of the engine's.</summary>
    public static char ByteChar(int b)
    {
        int next = 0;
        for (int x = 0; x < 256; x++)
        {
            bool printable = (x >= 33 && x <= 126) || (x >= 161 && x <= 172) || (x >= 174 && x <= 255);
            if (x == b) return printable ? (char)x : (char)(256 + next);
            if (!printable) next++;
        }
        throw new ArgumentOutOfRangeException(nameof(b));
    }
}

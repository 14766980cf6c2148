using System.Text;
using System.Text.Json;
using Actors.Engine.Tokenization;

namespace Actors.Engine.Tests.Tokenization;

/// <summary>Locates test data in the source tree (the repository root is the folder holding Actors.sln).</summary>
internal static class TokenizerTestFiles
{
    public static string RepoRoot
    {
        get
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
                if (File.Exists(Path.Combine(dir.FullName, "Actors.sln"))) return dir.FullName;
            throw new InvalidOperationException($"no Actors.sln above {AppContext.BaseDirectory}");
        }
    }

    /// <summary>tests/Engine.Tests/Tokenization/Data: tokenizers made for these tests, with Hugging Face's results.</summary>
    public static string DataDir => Path.Combine(RepoRoot, "tests", "Engine.Tests", "Tokenization", "Data");

    /// <summary>tests/fixtures/tokenizers: the project's parity fixtures.</summary>
    public static string FixturesDir => Path.Combine(RepoRoot, "tests", "fixtures", "tokenizers");

    public static HfTokenizer LoadData(string name) => HfTokenizer.Load(Path.Combine(DataDir, name, "tokenizer.json"));
}

/// <summary>
/// Checks a tokenizer against a cases.json recorded from Hugging Face tokenizers:
/// [{"text", "ids" (no special tokens), "ids_with_special", "decoded" (decode(ids)), "decoded_skip"
/// (decode(ids_with_special, skip_special_tokens)), optional "stream" (DecodeStream outputs over ids_with_special)}].
/// Every mismatch is collected so that one run shows them all.
/// </summary>
internal static class CaseRunner
{
    public static int Check(string directory)
    {
        string tokenizerPath = Path.Combine(directory, "tokenizer.json");
        string casesPath = Path.Combine(directory, "cases.json");
        Assert.True(File.Exists(tokenizerPath), $"missing {tokenizerPath}");
        Assert.True(File.Exists(casesPath), $"missing {casesPath}");
        var tokenizer = HfTokenizer.Load(tokenizerPath);

        using var doc = JsonDocument.Parse(File.ReadAllText(casesPath, Encoding.UTF8));
        var failures = new List<string>();
        int count = 0;
        foreach (var c in doc.RootElement.EnumerateArray())
        {
            count++;
            string text = c.GetProperty("text").GetString()!;
            string label = $"{Path.GetFileName(directory)} text {JsonSerializer.Serialize(text)}";
            int[] ids = Ints(c.GetProperty("ids"));
            int[] withSpecial = Ints(c.GetProperty("ids_with_special"));

            var got = tokenizer.Encode(text);
            if (!got.SequenceEqual(ids)) failures.Add($"{label}: encode [{string.Join(",", got)}] expected [{string.Join(",", ids)}]");
            var gotSpecial = tokenizer.Encode(text, addSpecialTokens: true);
            if (!gotSpecial.SequenceEqual(withSpecial))
                failures.Add($"{label}: encode with special [{string.Join(",", gotSpecial)}] expected [{string.Join(",", withSpecial)}]");

            string decoded = c.GetProperty("decoded").GetString()!;
            string gotDecoded = tokenizer.Decode(ids);
            if (gotDecoded != decoded) failures.Add($"{label}: decode {JsonSerializer.Serialize(gotDecoded)} expected {JsonSerializer.Serialize(decoded)}");
            string decodedSkip = c.GetProperty("decoded_skip").GetString()!;
            string gotSkip = tokenizer.Decode(withSpecial, skipSpecialTokens: true);
            if (gotSkip != decodedSkip) failures.Add($"{label}: decode skip {JsonSerializer.Serialize(gotSkip)} expected {JsonSerializer.Serialize(decodedSkip)}");

            // Streaming the same ids gives the whole decode once the held-back rest is flushed.
            var streamer = tokenizer.CreateStreamDecoder(skipSpecialTokens: true);
            string streamed = string.Concat(withSpecial.Select(streamer.Push)) + streamer.Flush();
            if (streamed != decodedSkip)
                failures.Add($"{label}: streamed {JsonSerializer.Serialize(streamed)} expected {JsonSerializer.Serialize(decodedSkip)}");

            if (c.TryGetProperty("stream", out var stream) && stream.ValueKind == JsonValueKind.Array)
            {
                var expected = stream.EnumerateArray().Select(s => s.GetString()!).ToArray();
                var decoder = tokenizer.CreateStreamDecoder(skipSpecialTokens: true);
                var pieces = withSpecial.Select(decoder.Push).ToArray();
                if (!pieces.SequenceEqual(expected))
                    failures.Add($"{label}: stream {JsonSerializer.Serialize(pieces)} expected {JsonSerializer.Serialize(expected)}");
            }
        }
        Assert.True(count > 0, $"{casesPath} holds no cases");
        Assert.True(failures.Count == 0, $"{failures.Count} mismatches with Hugging Face tokenizers:\n" + string.Join("\n", failures));
        return count;
    }

    private static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();
}

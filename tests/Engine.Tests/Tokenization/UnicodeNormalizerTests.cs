using System.Text;
using System.Text.Json;
using Actors.Engine.Tokenization;

namespace Actors.Engine.Tests.Tokenization;

/// <summary>
/// The managed NFC/NFD/NFKC/NFKD (the build's InvariantGlobalization makes string.Normalize a no-op) against
/// Python's unicodedata on random strings (Data/normalization_cases.json) and a few cases worked by hand.
/// </summary>
public sealed class UnicodeNormalizerTests
{
    [Fact]
    public void HandWorkedCases()
    {
        Assert.Equal("\u00E9", UnicodeNormalizer.Normalize("e\u0301", NormalizationForm.FormC));
        Assert.Equal("e\u0301", UnicodeNormalizer.Normalize("\u00E9", NormalizationForm.FormD));
        // Angstrom sign is a singleton: NFC gives Å (U+00C5), never back to U+212B.
        Assert.Equal("\u00C5", UnicodeNormalizer.Normalize("\u212B", NormalizationForm.FormC));
        // Hangul: 한 = ᄒ ᅡ ᆫ, and back.
        Assert.Equal("\u1112\u1161\u11AB", UnicodeNormalizer.Normalize("한", NormalizationForm.FormD));
        Assert.Equal("한", UnicodeNormalizer.Normalize("\u1112\u1161\u11AB", NormalizationForm.FormC));
        // Canonical order: dot below (220) sorts before dot above (230), then ṩ composes.
        Assert.Equal("\u1E69", UnicodeNormalizer.Normalize("s\u0307\u0323", NormalizationForm.FormC));
        // Compatibility: ligature and circled digit.
        Assert.Equal("fi 1", UnicodeNormalizer.Normalize("\uFB01 \u2460", NormalizationForm.FormKC));
        Assert.Equal("ascii stays", UnicodeNormalizer.Normalize("ascii stays", NormalizationForm.FormKD));
    }

    [Fact]
    public void MatchesPythonUnicodedata()
    {
        string path = Path.Combine(TokenizerTestFiles.DataDir, "normalization_cases.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var failures = new List<string>();
        int count = 0;
        foreach (var c in doc.RootElement.EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            foreach (var (name, form) in new[] { ("NFC", NormalizationForm.FormC), ("NFD", NormalizationForm.FormD),
                         ("NFKC", NormalizationForm.FormKC), ("NFKD", NormalizationForm.FormKD) })
            {
                count++;
                string expected = c.GetProperty(name).GetString()!;
                string got = UnicodeNormalizer.Normalize(text, form);
                if (got != expected)
                    failures.Add($"{name}({Escape(text)}) = {Escape(got)}, expected {Escape(expected)}");
            }
        }
        Assert.Equal(1600, count);
        Assert.True(failures.Count == 0, $"{failures.Count} mismatches:\n" + string.Join("\n", failures.Take(30)));
    }

    private static string Escape(string s) => string.Concat(s.EnumerateRunes().Select(r => $"U+{r.Value:X4} "));
}

using System.Text;
using System.Text.Json;
using Actors.Engine.Chat;

namespace Actors.Engine.Tests.Chat;

/// <summary>
/// Parity with transformers: every tests/fixtures/chat/&lt;name&gt;/ holds a tokenizer_config.json and cases.json =
/// [{"messages": [...], "add_generation_prompt": bool, "rendered": "..."}] produced by
/// tools/reference/make_fixtures.py with apply_chat_template(tokenize=False). Optional per-case keys:
/// "tools" (passed as the tools variable), "kwargs" (extra variables), "error" (raise_exception message expected).
/// </summary>
public class ChatFixtureTests
{
    [Fact]
    public void EveryFixtureCaseRendersExactlyAsTransformers()
    {
        string dir = Path.Combine(RepoPaths.Root(), "tests", "fixtures", "chat");
        Assert.True(Directory.Exists(dir),
            $"Chat fixtures are missing: {dir} does not exist. Generate them with tools/reference/make_fixtures.py "
            + "(transformers apply_chat_template over tools/reference/templates/*.jinja).");
        var folders = Directory.GetDirectories(dir).OrderBy(d => d, StringComparer.Ordinal).ToList();
        Assert.True(folders.Count > 0, $"{dir} has no fixture folders.");

        var failures = new List<string>();
        int cases = 0;
        foreach (string folder in folders)
        {
            string name = Path.GetFileName(folder);
            string config = Path.Combine(folder, "tokenizer_config.json");
            string casesPath = Path.Combine(folder, "cases.json");
            Assert.True(File.Exists(config), $"{config} is missing");
            Assert.True(File.Exists(casesPath), $"{casesPath} is missing");
            var template = ChatTemplate.FromTokenizerConfig(config);
            using var doc = JsonDocument.Parse(File.ReadAllText(casesPath));
            int i = 0;
            foreach (var c in doc.RootElement.EnumerateArray())
            {
                cases++;
                string label = $"{name}[{i++}]";
                var messages = c.GetProperty("messages").EnumerateArray()
                    .Select(m => (IReadOnlyDictionary<string, object?>)m.EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone()))
                    .ToList();
                bool addGen = c.TryGetProperty("add_generation_prompt", out var ag) && ag.GetBoolean();
                var extra = new Dictionary<string, object?>();
                if (c.TryGetProperty("tools", out var tools) && tools.ValueKind != JsonValueKind.Null) extra["tools"] = tools.Clone();
                if (c.TryGetProperty("kwargs", out var kw) && kw.ValueKind == JsonValueKind.Object)
                    foreach (var p in kw.EnumerateObject()) extra[p.Name] = p.Value.Clone();
                try
                {
                    string got = template.RenderMessageObjects(messages, addGen, extra);
                    if (c.TryGetProperty("error", out var err) && err.ValueKind == JsonValueKind.String)
                        failures.Add($"{label}: expected error \"{err.GetString()}\" but rendered {Quote(got)}");
                    else
                    {
                        string want = c.GetProperty("rendered").GetString()!;
                        if (got != want) failures.Add($"{label}: {Diff(want, got)}");
                    }
                }
                catch (ChatTemplateException e)
                {
                    if (!(c.TryGetProperty("error", out var err) && err.ValueKind == JsonValueKind.String && e.Message.Contains(err.GetString()!)))
                        failures.Add($"{label}: threw {e.Message}");
                }
            }
        }
        Assert.True(cases > 0, $"{dir}: no cases found");
        Assert.True(failures.Count == 0, $"{failures.Count} of {cases} chat fixture cases differ:\n" + string.Join("\n", failures));
    }

    private static readonly JsonSerializerOptions Readable = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    private static string Quote(string s) => JsonSerializer.Serialize(s, Readable);

    private static string Diff(string want, string got)
    {
        int p = 0;
        while (p < want.Length && p < got.Length && want[p] == got[p]) p++;
        int from = Math.Max(0, p - 30);
        var sb = new StringBuilder();
        sb.Append($"first difference at char {p} (lengths {want.Length} vs {got.Length}); ");
        sb.Append("expected …").Append(Quote(want[from..Math.Min(want.Length, p + 30)]));
        sb.Append(" got …").Append(Quote(got[from..Math.Min(got.Length, p + 30)]));
        return sb.ToString();
    }
}

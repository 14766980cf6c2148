using System.Text.Json;
using Actors.Engine.Chat;

namespace Actors.Engine.Tests.Chat;

/// <summary>
/// Differential test against real Jinja2: Reference/jinja_cases.json was produced by Reference/make_jinja_cases.py,
/// which renders each template with jinja2 3.1.6 configured as transformers configures it. Every rendered string
/// must match exactly; every Jinja2 error must be a ChatTemplateException here (raise_exception messages exactly).
/// </summary>
public class JinjaReferenceTests
{
    [Fact]
    public void MatchesJinja2OnEveryReferenceCase()
    {
        string path = Path.Combine(RepoPaths.Root(), "tests", "Engine.Tests", "Chat", "Reference", "jinja_cases.json");
        using var doc = JsonDocument.Parse(File.ReadAllText(path));
        var failures = new List<string>();
        int n = 0;
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            n++;
            string template = c.GetProperty("template").GetString()!;
            string label = $"#{n} {c.GetProperty("kind").GetString()} {JsonSerializer.Serialize(template.Length > 70 ? template[..70] : template)}";
            var vars = c.GetProperty("vars").EnumerateObject().ToDictionary(p => p.Name, p => (object?)p.Value.Clone());
            try
            {
                string got = ChatTemplate.Parse(template, "<s>", "</s>").Render([], false, vars);
                if (c.TryGetProperty("rendered", out var r))
                {
                    if (got != r.GetString()) failures.Add($"{label}: expected {JsonSerializer.Serialize(r.GetString())} got {JsonSerializer.Serialize(got)}");
                }
                else failures.Add($"{label}: Jinja2 raised {ErrorType(c)} but rendered {JsonSerializer.Serialize(got)}");
            }
            catch (ChatTemplateException e)
            {
                if (c.TryGetProperty("rendered", out _)) failures.Add($"{label}: threw {e.Message}");
                else if (c.TryGetProperty("syntax_error", out _) != e is ChatTemplateSyntaxException)
                    failures.Add($"{label}: Jinja2 raised {ErrorType(c)}, this raised {e.GetType().Name}: {e.Message}");
                else if (ErrorType(c) == "TemplateError" && e.Message != c.GetProperty("error").GetString())
                    failures.Add($"{label}: raise_exception message {JsonSerializer.Serialize(e.Message)}");
            }
            catch (Exception e)
            {
                failures.Add($"{label}: unexpected {e.GetType().Name}: {e.Message}");
            }
        }
        Assert.True(n > 100, $"only {n} reference cases in {path}");
        Assert.True(failures.Count == 0, $"{failures.Count} of {n} cases differ from Jinja2:\n" + string.Join("\n", failures));
    }

    private static string ErrorType(JsonElement c) =>
        c.TryGetProperty("error_type", out var t) ? t.GetString()! : c.TryGetProperty("syntax_error", out _) ? "TemplateSyntaxError" : "?";
}

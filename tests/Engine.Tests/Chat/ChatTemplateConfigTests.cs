using Actors.Engine.Chat;
using Actors.Engine.Model;

namespace Actors.Engine.Tests.Chat;

public class ChatTemplateConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("chat-template-tests").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string json)
    {
        string path = Path.Combine(_dir, Guid.NewGuid().ToString("N") + ".json");
        File.WriteAllText(path, json);
        return path;
    }

    [Fact]
    public void ReadsStringTemplateAndTokenObjects()
    {
        string path = Write("""
            {"bos_token": {"__type": "AddedToken", "content": "<s>", "lstrip": false},
             "eos_token": "</s>", "unk_token": null,
             "chat_template": "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{{ eos_token }}{% endfor %}[{{ unk_token }}]"}
            """);
        var t = ChatTemplate.FromTokenizerConfig(path);
        Assert.Equal("<s>user:hi</s>[]", t.Render([new ChatMessage("user", "hi")], false));
        Assert.Equal("<s>", t.SpecialTokens["bos_token"]);
        Assert.False(t.SpecialTokens.ContainsKey("unk_token"));
    }

    [Fact]
    public void PicksDefaultFromNamedTemplateList()
    {
        string path = Write("""
            {"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D{{ messages | length }}"}]}
            """);
        Assert.Equal("D2", ChatTemplate.FromTokenizerConfig(path).Render([new("user", "a"), new("assistant", "b")], false));
    }

    [Fact]
    public void MissingTemplateNamesFileAndField()
    {
        string path = Write("""{"bos_token": "<s>"}""");
        var e = Assert.Throws<ModelFormatException>(() => ChatTemplate.FromTokenizerConfig(path));
        Assert.Equal("chat_template", e.Field);
        Assert.Contains(path, e.Message);
    }

    [Fact]
    public void SyntaxErrorInConfigTemplateNamesFileAndField()
    {
        string path = Write("""{"chat_template": "{% if x %}"}""");
        var e = Assert.Throws<ModelFormatException>(() => ChatTemplate.FromTokenizerConfig(path));
        Assert.Equal("chat_template", e.Field);
        Assert.Contains(path, e.Message);
        Assert.Contains(":1:", e.Message);
    }

    [Fact]
    public void ChatTemplateJinjaBesideTheConfigTakesPrecedence()
    {
        string sub = Directory.CreateDirectory(Path.Combine(_dir, "withjinja")).FullName;
        string path = Path.Combine(sub, "tokenizer_config.json");
        File.WriteAllText(path, """{"eos_token": "</s>", "chat_template": "from-config"}""");
        File.WriteAllText(Path.Combine(sub, "chat_template.jinja"), "{% for m in messages %}{{ m.content }}{{ eos_token }}{% endfor %}\n");
        Assert.Equal("a</s>", ChatTemplate.FromTokenizerConfig(path).Render([new("user", "a")], false));
        File.WriteAllText(path, """{"eos_token": "</s>"}""");
        Assert.Equal("a</s>", ChatTemplate.FromTokenizerConfig(path).Render([new("user", "a")], false));
    }
}

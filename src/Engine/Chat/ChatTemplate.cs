using System.Globalization;
using System.Text;
using System.Text.Json;
using Actors.Engine.Chat.Jinja;
using Actors.Engine.Model;

namespace Actors.Engine.Chat;

/// <summary>
/// A Hugging Face chat template (the <c>chat_template</c> of tokenizer_config.json), rendered the way
/// transformers' <c>apply_chat_template(..., tokenize=False)</c> does: Jinja2 with trim_blocks and
/// lstrip_blocks, the loopcontrols extension, globals <c>raise_exception</c> / <c>strftime_now</c>,
/// a JSON <c>tojson</c>, and variables messages, add_generation_prompt, the special tokens, tools=None,
/// documents=None plus any extra variables. The Jinja2 subset is interpreted by a hand-written engine.
/// </summary>
public sealed class ChatTemplate
{
    private readonly List<Stmt> _program;
    private readonly string _source;
    private readonly Dictionary<string, string> _specialTokens;

    private ChatTemplate(string template, Dictionary<string, string> specialTokens, string source)
    {
        _source = source;
        _specialTokens = specialTokens;
        Text = template;
        _program = new Parser(new Lexer(template, source)).ParseTemplate();
    }

    /// <summary>The template source text.</summary>
    public string Text { get; }

    /// <summary>Special tokens exposed to the template (bos_token, eos_token, unk_token, pad_token when set).</summary>
    public IReadOnlyDictionary<string, string> SpecialTokens => _specialTokens;

    /// <summary>Parses a template; bos/eos become the <c>bos_token</c>/<c>eos_token</c> variables (left undefined when null).</summary>
    public static ChatTemplate Parse(string template, string? bosToken = null, string? eosToken = null, string source = "template")
    {
        ArgumentNullException.ThrowIfNull(template);
        var tokens = new Dictionary<string, string>(StringComparer.Ordinal);
        if (bosToken is not null) tokens["bos_token"] = bosToken;
        if (eosToken is not null) tokens["eos_token"] = eosToken;
        return new ChatTemplate(template, tokens, source);
    }

    /// <summary>
    /// Reads <c>chat_template</c> (a string, or a list of {name, template} from which "default" is taken) and
    /// the special tokens (strings or {"content": ...} objects) from a tokenizer_config.json. A chat_template.jinja
    /// file in the same folder takes precedence over the field, as in transformers.
    /// </summary>
    public static ChatTemplate FromTokenizerConfig(string tokenizerConfigPath)
    {
        string file = tokenizerConfigPath;
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllText(file));
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(file, "(json)", $"invalid JSON: {e.Message}");
        }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object) throw new ModelFormatException(file, "(root)", "expected a JSON object");
            // Newer transformers save the template as chat_template.jinja beside the config; when present it wins.
            string sibling = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(file)) ?? ".", "chat_template.jinja");
            bool hasField = root.TryGetProperty("chat_template", out var ct) && ct.ValueKind != JsonValueKind.Null;
            if (!hasField && !File.Exists(sibling))
                throw new ModelFormatException(file, "chat_template", "missing (and no chat_template.jinja beside it); this tokenizer has no chat template");
            string template;
            string source = $"{file}:chat_template";
            switch (File.Exists(sibling) ? JsonValueKind.Undefined : ct.ValueKind)
            {
                case JsonValueKind.Undefined:
                    template = File.ReadAllText(sibling);
                    source = sibling;
                    break;
                case JsonValueKind.String:
                    template = ct.GetString()!;
                    break;
                case JsonValueKind.Array:
                {
                    string? found = null;
                    int i = 0;
                    foreach (var item in ct.EnumerateArray())
                    {
                        if (item.ValueKind != JsonValueKind.Object
                            || !item.TryGetProperty("name", out var n) || n.ValueKind != JsonValueKind.String
                            || !item.TryGetProperty("template", out var t) || t.ValueKind != JsonValueKind.String)
                            throw new ModelFormatException(file, $"chat_template[{i}]", "expected {\"name\": string, \"template\": string}");
                        if (n.GetString() == "default") found = t.GetString();
                        i++;
                    }
                    template = found ?? throw new ModelFormatException(file, "chat_template", "list of named templates has no \"default\" entry");
                    source = $"{file}:chat_template[default]";
                    break;
                }
                default:
                    throw new ModelFormatException(file, "chat_template", $"expected a string or a list of named templates, got {ct.ValueKind}");
            }
            var tokens = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (string name in (string[])["bos_token", "eos_token", "unk_token", "pad_token"])
            {
                if (!root.TryGetProperty(name, out var tok) || tok.ValueKind == JsonValueKind.Null) continue;
                if (tok.ValueKind == JsonValueKind.String) tokens[name] = tok.GetString()!;
                else if (tok.ValueKind == JsonValueKind.Object && tok.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String)
                    tokens[name] = c.GetString()!;
                else throw new ModelFormatException(file, name, "expected a string or an object with a string \"content\"");
            }
            try
            {
                return new ChatTemplate(template, tokens, source);
            }
            catch (ChatTemplateSyntaxException e)
            {
                throw new ModelFormatException(source == sibling ? sibling : file, "chat_template", e.Message);
            }
        }
    }

    /// <summary>Renders a conversation of role/content messages.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? extraVariables = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var list = messages.Select(m => (object?)new PyDict { ["role"] = m.Role, ["content"] = m.Content }).ToList();
        return RenderCore(list, addGenerationPrompt, extraVariables);
    }

    /// <summary>
    /// Renders messages given as free-form objects (e.g. with tool_calls); values may be .NET primitives,
    /// dictionaries, lists or <see cref="JsonElement"/>s.
    /// </summary>
    public string RenderMessageObjects(IReadOnlyList<IReadOnlyDictionary<string, object?>> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? extraVariables = null)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var list = messages.Select(m => Py.FromClr(m)).ToList();
        return RenderCore(list, addGenerationPrompt, extraVariables);
    }

    private string RenderCore(List<object?> messages, bool addGenerationPrompt, IReadOnlyDictionary<string, object?>? extra)
    {
        var globals = new Scope(null);
        globals.Set("raise_exception", new PyCallable("raise_exception", (args, _) =>
            throw new ChatTemplateException(args.Count > 0 ? Py.Str(args[0]) : "")));
        globals.Set("strftime_now", new PyCallable("strftime_now", (args, _) =>
            Strftime(DateTime.Now, args.Count > 0 ? Py.Str(args[0]) : "")));
        globals.Set("namespace", new PyCallable("namespace", (args, kwargs) =>
        {
            var ns = new Namespace();
            foreach (var a in args)
                if (a is PyDict d) foreach (var kv in d) ns.Attributes[Py.Str(kv.Key)] = kv.Value;
            foreach (var kv in kwargs) ns.Attributes[kv.Key] = kv.Value;
            return ns;
        }));
        globals.Set("range", new PyCallable("range", (args, _) =>
        {
            long start = 0, stop, step = 1;
            if (args.Count == 1) stop = Py.ToLong(args[0]);
            else if (args.Count >= 2) { start = Py.ToLong(args[0]); stop = Py.ToLong(args[1]); if (args.Count > 2) step = Py.ToLong(args[2]); }
            else throw new JinjaRuntimeException("range expected at least 1 argument, got 0");
            if (step == 0) throw new JinjaRuntimeException("range() arg 3 must not be zero");
            var r = new List<object?>();
            for (long i = start; step > 0 ? i < stop : i > stop; i += step)
            {
                r.Add(i);
                if (r.Count > 100_000) throw new JinjaRuntimeException("range too big");
            }
            return r;
        }));
        globals.Set("dict", new PyCallable("dict", (args, kwargs) =>
        {
            var d = new PyDict();
            if (args.Count > 0 && args[0] is PyDict src) foreach (var kv in src) d[kv.Key] = kv.Value;
            foreach (var kv in kwargs) d[kv.Key] = kv.Value;
            return d;
        }));
        globals.Set("messages", messages);
        globals.Set("add_generation_prompt", addGenerationPrompt);
        globals.Set("tools", null);
        globals.Set("documents", null);
        foreach (var (name, value) in _specialTokens) globals.Set(name, value);
        if (extra is not null)
            foreach (var (name, value) in extra) globals.Set(name, Py.FromClr(value));
        return new Interpreter(_source).Render(_program, globals);
    }

    /// <summary>Python datetime.strftime for the common directives.</summary>
    private static string Strftime(DateTime t, string format)
    {
        var ci = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        for (int i = 0; i < format.Length; i++)
        {
            if (format[i] != '%' || i + 1 >= format.Length) { sb.Append(format[i]); continue; }
            char c = format[++i];
            // glibc's "%-d" style: the same field without zero padding.
            bool noPad = c == '-' && i + 1 < format.Length;
            if (noPad) c = format[++i];
            string field = c switch
            {
                'Y' => t.Year.ToString("0000", ci),
                'y' => (t.Year % 100).ToString("00", ci),
                'm' => t.Month.ToString("00", ci),
                'd' => t.Day.ToString("00", ci),
                'H' => t.Hour.ToString("00", ci),
                'I' => ((t.Hour + 11) % 12 + 1).ToString("00", ci),
                'M' => t.Minute.ToString("00", ci),
                'S' => t.Second.ToString("00", ci),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'b' => t.ToString("MMM", ci),
                'B' => t.ToString("MMMM", ci),
                'a' => t.ToString("ddd", ci),
                'A' => t.ToString("dddd", ci),
                'j' => t.DayOfYear.ToString("000", ci),
                '%' => "%",
                _ => "%" + c,
            };
            sb.Append(noPad && field.Length > 1 && char.IsAsciiDigit(field[0]) ? field.TrimStart('0').PadLeft(1, '0') : field);
        }
        return sb.ToString();
    }
}

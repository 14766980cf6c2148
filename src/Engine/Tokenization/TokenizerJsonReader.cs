using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Actors.Engine.Model;

namespace Actors.Engine.Tokenization;

/// <summary>
/// Reads tokenizer.json into the pipeline components. Every problem is a <see cref="ModelFormatException"/> naming
/// the file and the JSON path of the field (e.g. "model.merges[12]").
/// </summary>
internal sealed class TokenizerJsonReader
{
    private readonly string _file;

    private TokenizerJsonReader(string file) => _file = file;

    public static HfTokenizer Read(string json, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(json);
        var reader = new TokenizerJsonReader(sourceName);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(sourceName, $"(line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1})", $"not valid JSON: {e.Message}");
        }
        using (doc) return reader.ReadRoot(doc.RootElement);
    }

    private ModelFormatException Error(string field, string problem) => new(_file, field, problem);

    private HfTokenizer ReadRoot(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object) throw Error("$", $"expected a JSON object, found {root.ValueKind}");
        if (!root.TryGetProperty("model", out var modelElement) || modelElement.ValueKind == JsonValueKind.Null)
            throw Error("model", "is missing");

        var model = ReadModel(modelElement, "model");
        var normalizer = Optional(root, "normalizer", ReadNormalizer);
        var preTokenizer = Optional(root, "pre_tokenizer", ReadPreTokenizer);
        var decoder = Optional(root, "decoder", ReadDecoder);

        var addedTokens = new List<(string, bool, bool, bool, bool, bool)>();
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind != JsonValueKind.Null)
        {
            int index = 0;
            foreach (var t in Array(added, "added_tokens"))
            {
                string path = $"added_tokens[{index++}]";
                if (t.ValueKind != JsonValueKind.Object) throw Error(path, "expected an object");
                addedTokens.Add((RequiredString(t, "content", path), Bool(t, "special", path, false), Bool(t, "single_word", path, false),
                    Bool(t, "lstrip", path, false), Bool(t, "rstrip", path, false), Bool(t, "normalized", path, true)));
            }
        }
        var vocabulary = new AddedVocabulary(addedTokens, model, normalizer);

        // The post-processor refers to tokens by name; resolve them against the finished vocabulary.
        int? Resolve(string token) => vocabulary.TokenToId(token) ?? model.TokenToId(token);
        var postProcessor = Optional(root, "post_processor", (e, p) => ReadPostProcessor(e, p, Resolve));

        return new HfTokenizer(_file, normalizer, preTokenizer, model, vocabulary, postProcessor, decoder);
    }

    private static T? Optional<T>(JsonElement root, string name, Func<JsonElement, string, T> read) where T : class =>
        root.TryGetProperty(name, out var e) && e.ValueKind != JsonValueKind.Null ? read(e, name) : null;

    // ---- model ----

    private BpeModel ReadModel(JsonElement e, string path)
    {
        if (e.ValueKind != JsonValueKind.Object) throw Error(path, "expected an object");
        string type = e.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "BPE";
        if (type != "BPE") throw Error($"{path}.type", $"model.type '{type}' is not supported (only BPE)");

        if (!e.TryGetProperty("vocab", out var vocabElement) || vocabElement.ValueKind != JsonValueKind.Object)
            throw Error($"{path}.vocab", "is missing or not an object of token -> id");
        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var entry in vocabElement.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
                throw Error($"{path}.vocab[{Quote(entry.Name)}]", $"id must be a non-negative 32-bit integer, found {Describe(entry.Value)}");
            vocab[entry.Name] = id;
        }

        if (e.TryGetProperty("dropout", out var dropout) && dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() > 0)
            throw Error($"{path}.dropout", "BPE dropout (random merges) is not supported for inference");

        string? unk = OptionalString(e, "unk_token", path);
        string? prefix = OptionalString(e, "continuing_subword_prefix", path);
        string? suffix = OptionalString(e, "end_of_word_suffix", path);
        bool fuseUnk = Bool(e, "fuse_unk", path, false);
        bool byteFallback = Bool(e, "byte_fallback", path, false);
        bool ignoreMerges = Bool(e, "ignore_merges", path, false);

        if (unk is not null && !vocab.ContainsKey(unk))
            throw Error($"{path}.unk_token", $"'{unk}' is not in model.vocab");
        if (byteFallback)
        {
            bool any = false;
            for (int b = 0; b < 256 && !any; b++) any = vocab.ContainsKey(BpeModel.ByteTokenName((byte)b));
            if (!any) throw Error($"{path}.byte_fallback", "is true but model.vocab has no byte tokens <0x00>..<0xFF>");
        }

        var merges = new Dictionary<long, (int Rank, int NewId)>();
        if (!e.TryGetProperty("merges", out var mergesElement) || mergesElement.ValueKind == JsonValueKind.Null)
            throw Error($"{path}.merges", "is missing");
        int prefixLength = prefix?.Length ?? 0;
        int rank = 0, index = 0;
        foreach (var m in Array(mergesElement, $"{path}.merges"))
        {
            string mPath = $"{path}.merges[{index++}]";
            string left, right;
            if (m.ValueKind == JsonValueKind.String)
            {
                string line = m.GetString()!;
                if (line.StartsWith("#version", StringComparison.Ordinal)) continue;
                var parts = line.Split(' ');
                if (parts.Length != 2) throw Error(mPath, $"expected \"left right\" (two tokens separated by one space), found {Quote(line)}");
                (left, right) = (parts[0], parts[1]);
            }
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2
                     && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
            {
                (left, right) = (m[0].GetString()!, m[1].GetString()!);
            }
            else throw Error(mPath, $"expected a string \"left right\" or a pair [left, right], found {Describe(m)}");

            if (!vocab.TryGetValue(left, out int leftId)) throw Error(mPath, $"token {Quote(left)} is not in model.vocab");
            if (!vocab.TryGetValue(right, out int rightId)) throw Error(mPath, $"token {Quote(right)} is not in model.vocab");
            if (right.Length < prefixLength) throw Error(mPath, $"token {Quote(right)} is shorter than continuing_subword_prefix");
            string merged = left + right[prefixLength..];
            if (!vocab.TryGetValue(merged, out int mergedId)) throw Error(mPath, $"merged token {Quote(merged)} is not in model.vocab");
            // A repeated pair keeps its last rank, as tokenizers' map does.
            merges[BpeModel.PairKey(leftId, rightId)] = (rank, mergedId);
            rank++;
        }

        return new BpeModel(vocab, merges, unk, prefix, suffix, fuseUnk, byteFallback, ignoreMerges);
    }

    // ---- normalizers ----

    private INormalizer ReadNormalizer(JsonElement e, string path)
    {
        string type = TypeOf(e, path);
        switch (type)
        {
            case "Sequence":
            {
                var list = new List<INormalizer>();
                int i = 0;
                foreach (var n in Array(Required(e, "normalizers", path), $"{path}.normalizers"))
                    list.Add(ReadNormalizer(n, $"{path}.normalizers[{i++}]"));
                return new SequenceNormalizer(list);
            }
            case "NFC": return new UnicodeFormNormalizer(NormalizationForm.FormC);
            case "NFD": return new UnicodeFormNormalizer(NormalizationForm.FormD);
            case "NFKC": return new UnicodeFormNormalizer(NormalizationForm.FormKC);
            case "NFKD": return new UnicodeFormNormalizer(NormalizationForm.FormKD);
            case "Prepend": return new PrependNormalizer(RequiredString(e, "prepend", path));
            case "Replace": return new ReplaceNormalizer(ReadPattern(e, path), RequiredString(e, "content", path));
            case "Lowercase": return new LowercaseNormalizer();
            case "Strip": return new StripNormalizer(Bool(e, "strip_left", path, true), Bool(e, "strip_right", path, true));
            default: throw Error($"{path}.type", $"normalizer type '{type}' is not supported");
        }
    }

    // ---- pre-tokenizers ----

    private IPreTokenizer ReadPreTokenizer(JsonElement e, string path)
    {
        string type = TypeOf(e, path);
        switch (type)
        {
            case "Sequence":
            {
                var list = new List<IPreTokenizer>();
                int i = 0;
                foreach (var p in Array(Required(e, "pretokenizers", path), $"{path}.pretokenizers"))
                    list.Add(ReadPreTokenizer(p, $"{path}.pretokenizers[{i++}]"));
                return new SequencePreTokenizer(list);
            }
            case "Split":
            {
                string behavior = RequiredString(e, "behavior", path);
                if (!Enum.TryParse<SplitBehavior>(behavior, ignoreCase: false, out var b) || !Enum.IsDefined(b))
                    throw Error($"{path}.behavior", $"unknown split behavior '{behavior}'");
                return new SplitPreTokenizer(ReadPattern(e, path), b, Bool(e, "invert", path, false));
            }
            case "ByteLevel":
                return new ByteLevelPreTokenizer(Bool(e, "add_prefix_space", path, true), Bool(e, "use_regex", path, true));
            case "Metaspace":
            {
                var (replacement, scheme) = ReadMetaspace(e, path);
                return new MetaspacePreTokenizer(replacement, scheme, Bool(e, "split", path, true));
            }
            case "Digits":
                return new DigitsPreTokenizer(Bool(e, "individual_digits", path, false));
            default: throw Error($"{path}.type", $"pre_tokenizer type '{type}' is not supported");
        }
    }

    private (char Replacement, PrependScheme Scheme) ReadMetaspace(JsonElement e, string path)
    {
        string replacement = RequiredString(e, "replacement", path);
        if (replacement.Length != 1) throw Error($"{path}.replacement", $"expected one character, found {Quote(replacement)}");
        var scheme = PrependScheme.Always;
        if (e.TryGetProperty("prepend_scheme", out var s) && s.ValueKind == JsonValueKind.String)
        {
            scheme = s.GetString() switch
            {
                "first" => PrependScheme.First,
                "never" => PrependScheme.Never,
                "always" => PrependScheme.Always,
                var other => throw Error($"{path}.prepend_scheme", $"unknown prepend_scheme '{other}'"),
            };
        }
        // Older files: add_prefix_space false means never (tokenizers rejects it together with another scheme).
        if (e.TryGetProperty("add_prefix_space", out var aps) && aps.ValueKind == JsonValueKind.False)
        {
            if (scheme != PrependScheme.Never && e.TryGetProperty("prepend_scheme", out var ps) && ps.ValueKind == JsonValueKind.String)
                throw Error($"{path}.add_prefix_space", "add_prefix_space does not match declared prepend_scheme");
            scheme = PrependScheme.Never;
        }
        return (replacement[0], scheme);
    }

    // ---- decoders ----

    private IDecoder ReadDecoder(JsonElement e, string path)
    {
        string type = TypeOf(e, path);
        switch (type)
        {
            case "Sequence":
            {
                var list = new List<IDecoder>();
                int i = 0;
                foreach (var d in Array(Required(e, "decoders", path), $"{path}.decoders"))
                    list.Add(ReadDecoder(d, $"{path}.decoders[{i++}]"));
                return new SequenceDecoder(list);
            }
            case "ByteLevel": return new ByteLevelDecoder();
            case "ByteFallback": return new ByteFallbackDecoder();
            case "Fuse": return new FuseDecoder();
            case "Strip":
                return new StripDecoder(RequiredString(e, "content", path), Int(e, "start", path), Int(e, "stop", path));
            case "Replace": return new ReplaceDecoder(ReadPattern(e, path), RequiredString(e, "content", path));
            case "Metaspace":
            {
                var (replacement, scheme) = ReadMetaspace(e, path);
                return new MetaspaceDecoder(replacement, scheme);
            }
            default: throw Error($"{path}.type", $"decoder type '{type}' is not supported");
        }
    }

    // ---- post-processors ----

    private IPostProcessor ReadPostProcessor(JsonElement e, string path, Func<string, int?> resolve)
    {
        string type = TypeOf(e, path);
        switch (type)
        {
            case "Sequence":
            {
                var list = new List<IPostProcessor>();
                int i = 0;
                foreach (var p in Array(Required(e, "processors", path), $"{path}.processors"))
                    list.Add(ReadPostProcessor(p, $"{path}.processors[{i++}]", resolve));
                return new SequencePostProcessor(list);
            }
            case "ByteLevel": return new IdentityPostProcessor();
            case "TemplateProcessing": return ReadTemplate(e, path);
            case "BertProcessing":
            case "RobertaProcessing":
                return new ClsSepPostProcessor(ReadTokenPair(e, "cls", path), ReadTokenPair(e, "sep", path));
            default: throw Error($"{path}.type", $"post_processor type '{type}' is not supported");
        }
    }

    private int ReadTokenPair(JsonElement e, string name, string path)
    {
        var pair = Required(e, name, path);
        if (pair.ValueKind != JsonValueKind.Array || pair.GetArrayLength() != 2 || !pair[1].TryGetInt32(out int id))
            throw Error($"{path}.{name}", "expected [token, id]");
        return id;
    }

    private TemplatePostProcessor ReadTemplate(JsonElement e, string path)
    {
        var specials = new Dictionary<string, int[]>(StringComparer.Ordinal);
        if (e.TryGetProperty("special_tokens", out var st) && st.ValueKind == JsonValueKind.Object)
        {
            foreach (var entry in st.EnumerateObject())
            {
                string sPath = $"{path}.special_tokens[{Quote(entry.Name)}]";
                var ids = new List<int>();
                int i = 0;
                foreach (var id in Array(Required(entry.Value, "ids", sPath), $"{sPath}.ids"))
                {
                    if (!id.TryGetInt32(out int v) || v < 0) throw Error($"{sPath}.ids[{i}]", "expected a non-negative integer");
                    ids.Add(v);
                    i++;
                }
                string key = entry.Value.TryGetProperty("id", out var idName) && idName.ValueKind == JsonValueKind.String ? idName.GetString()! : entry.Name;
                specials[key] = ids.ToArray();
            }
        }

        var single = new List<int[]?>();
        int index = 0;
        foreach (var piece in Array(Required(e, "single", path), $"{path}.single"))
        {
            string pPath = $"{path}.single[{index++}]";
            if (piece.ValueKind == JsonValueKind.Object && piece.TryGetProperty("Sequence", out _))
                single.Add(null);
            else if (piece.ValueKind == JsonValueKind.Object && piece.TryGetProperty("SpecialToken", out var sp))
            {
                string name = RequiredString(sp, "id", $"{pPath}.SpecialToken");
                if (!specials.TryGetValue(name, out var ids))
                    throw Error($"{pPath}.SpecialToken.id", $"'{name}' is not listed in {path}.special_tokens");
                single.Add(ids);
            }
            else if (piece.ValueKind == JsonValueKind.String)
            {
                // Shorthand "$A" / "$0" for the sequence, "<s>" or "<s>:1" for a special token.
                string s = piece.GetString()!;
                if (s.StartsWith('$')) single.Add(null);
                else
                {
                    string name = s.Contains(':') ? s[..s.LastIndexOf(':')] : s;
                    if (!specials.TryGetValue(name, out var ids))
                        throw Error(pPath, $"'{name}' is not listed in {path}.special_tokens");
                    single.Add(ids);
                }
            }
            else throw Error(pPath, $"expected {{\"Sequence\": ...}} or {{\"SpecialToken\": ...}}, found {Describe(piece)}");
        }
        return new TemplatePostProcessor(single);
    }

    // ---- helpers ----

    private CodePointRegex ReadPattern(JsonElement e, string path)
    {
        var pattern = Required(e, "pattern", path);
        try
        {
            if (pattern.ValueKind == JsonValueKind.Object && pattern.TryGetProperty("String", out var s) && s.ValueKind == JsonValueKind.String)
                return CodePointRegex.ForLiteral(s.GetString()!);
            if (pattern.ValueKind == JsonValueKind.Object && pattern.TryGetProperty("Regex", out var r) && r.ValueKind == JsonValueKind.String)
                return new CodePointRegex(r.GetString()!);
        }
        catch (RegexParseException ex)
        {
            throw Error($"{path}.pattern.Regex", $"regex is not supported by .NET: {ex.Message}");
        }
        throw Error($"{path}.pattern", $"expected {{\"String\": ...}} or {{\"Regex\": ...}}, found {Describe(pattern)}");
    }

    private string TypeOf(JsonElement e, string path)
    {
        if (e.ValueKind != JsonValueKind.Object) throw Error(path, $"expected an object, found {Describe(e)}");
        return RequiredString(e, "type", path);
    }

    private JsonElement Required(JsonElement e, string name, string path)
    {
        if (e.ValueKind != JsonValueKind.Object || !e.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
            throw Error($"{path}.{name}", "is missing");
        return v;
    }

    private string RequiredString(JsonElement e, string name, string path)
    {
        var v = Required(e, name, path);
        if (v.ValueKind != JsonValueKind.String) throw Error($"{path}.{name}", $"expected a string, found {Describe(v)}");
        return v.GetString()!;
    }

    private string? OptionalString(JsonElement e, string name, string path)
    {
        if (!e.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.String) throw Error($"{path}.{name}", $"expected a string or null, found {Describe(v)}");
        return v.GetString();
    }

    private bool Bool(JsonElement e, string name, string path, bool defaultValue)
    {
        if (!e.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return defaultValue;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error($"{path}.{name}", $"expected true or false, found {Describe(v)}"),
        };
    }

    private int Int(JsonElement e, string name, string path)
    {
        var v = Required(e, name, path);
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int i) || i < 0)
            throw Error($"{path}.{name}", $"expected a non-negative integer, found {Describe(v)}");
        return i;
    }

    private IEnumerable<JsonElement> Array(JsonElement e, string path)
    {
        if (e.ValueKind != JsonValueKind.Array) throw Error(path, $"expected an array, found {Describe(e)}");
        return e.EnumerateArray();
    }

    private static string Describe(JsonElement e)
    {
        string raw = e.GetRawText();
        return raw.Length > 60 ? raw[..60] + "..." : raw;
    }

    // Quoted like a JSON string, non-ASCII kept readable ("w▁", not "w\u2581"); no reflection-based serializer.
    private static string Quote(string s)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case < ' ': sb.Append($"\\u{(int)c:X4}"); break;
                default: sb.Append(c); break;
            }
        }
        return sb.Append('"').ToString();
    }
}

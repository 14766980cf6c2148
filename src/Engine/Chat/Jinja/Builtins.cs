using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Actors.Engine.Chat.Jinja;

/// <summary>Attribute/item access, filters, tests and methods with Jinja2 (sandboxed, immutable) semantics.</summary>
internal static partial class Builtins
{
    private static readonly HashSet<string> DictMethods = ["items", "keys", "values", "get"];
    private static readonly HashSet<string> StrMethods =
    [
        "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "startswith", "endswith", "upper", "lower",
        "replace", "title", "capitalize", "format", "join", "find", "rfind", "count", "isdigit", "isalpha",
        "isalnum", "isspace", "isupper", "islower",
    ];
    private static readonly HashSet<string> ListMethods = ["index", "count"];
    private static readonly HashSet<string> MutatingMethods =
        ["append", "extend", "insert", "pop", "remove", "clear", "update", "setdefault", "popitem", "sort", "reverse"];

    private static Undefined NoAttr(object? obj, string name) =>
        new($"'{Py.TypeName(obj)} object' has no attribute '{name}'");

    /// <summary>Jinja2 <c>obj.name</c>: Python attribute first (methods), then item.</summary>
    public static object? GetAttr(object? obj, string name)
    {
        switch (obj)
        {
            case Undefined u: throw u.Fail();
            case PyDict d:
                if (DictMethods.Contains(name)) return Bind(d, name);
                if (MutatingMethods.Contains(name)) return Unsafe(d, name);
                return d.TryGetValue(name, out var v) ? v : NoAttr(obj, name);
            case string s:
                if (StrMethods.Contains(name)) return Bind(s, name);
                return NoAttr(obj, name);
            case List<object?> or object?[]:
                if (ListMethods.Contains(name)) return Bind(obj, name);
                if (MutatingMethods.Contains(name) && obj is List<object?>) return Unsafe(obj, name);
                return NoAttr(obj, name);
            case Namespace ns:
                return ns.Attributes.TryGetValue(name, out var nv) ? nv : NoAttr(obj, name);
            case LoopContext loop:
                return loop.Attr(name);
            default:
                return NoAttr(obj, name);
        }
    }

    /// <summary>Jinja2 <c>obj[key]</c>: item first, then attribute for string keys.</summary>
    public static object? GetItem(object? obj, object? key)
    {
        switch (obj)
        {
            case Undefined u: throw u.Fail();
            case PyDict d:
                if (key is not null and not Undefined && d.TryGetValue(key, out var v)) return v;
                return key is string ks ? GetAttr(obj, ks) : new Undefined($"'dict object' has no attribute {Py.Repr(key)}");
            case string or List<object?> or object?[]:
                if (key is long or bool)
                {
                    long i = Py.ToLong(key);
                    long n = Py.Length(obj);
                    if (i < 0) i += n;
                    if (i < 0 || i >= n) return new Undefined($"{Py.TypeName(obj)} object has no element {Py.ToLong(key)}");
                    return obj switch
                    {
                        string s => Py.HasSurrogates(s) ? Py.CodePoints(s)[(int)i] : s[(int)i].ToString(),
                        List<object?> l => l[(int)i],
                        object?[] t => t[(int)i],
                        _ => null,
                    };
                }
                return key is string ks2 ? GetAttr(obj, ks2) : new Undefined($"{Py.TypeName(obj)} indices must be integers");
            default:
                return key is string k ? GetAttr(obj, k) : new Undefined($"'{Py.TypeName(obj)} object' has no attribute {Py.Repr(key)}");
        }
    }

    /// <summary>Python slicing <c>obj[start:stop:step]</c>.</summary>
    public static object? Slice(object? obj, object? start, object? stop, object? step)
    {
        if (obj is Undefined u) throw u.Fail();
        long n = obj switch
        {
            string s => Py.Length(s),
            List<object?> l => l.Count,
            object?[] t => t.Length,
            _ => throw new JinjaRuntimeException($"'{Py.TypeName(obj)}' object is not subscriptable"),
        };
        long st = step is null ? 1 : Py.ToLong(step);
        if (st == 0) throw new JinjaRuntimeException("slice step cannot be zero");
        long Clamp(object? v, long dflt)
        {
            if (v is null) return dflt;
            long x = Py.ToLong(v);
            if (x < 0) x += n;
            return st > 0 ? Math.Clamp(x, 0, n) : Math.Clamp(x, -1, n - 1);
        }
        long a = Clamp(start, st > 0 ? 0 : n - 1);
        long b = Clamp(stop, st > 0 ? n : -1);
        var idx = new List<int>();
        string[]? cps = obj is string str && Py.HasSurrogates(str) ? Py.CodePoints(str) : null;
        for (long i = a; st > 0 ? i < b : i > b; i += st) idx.Add((int)i);
        return obj switch
        {
            string s when Py.HasSurrogates(s) => string.Concat(idx.Select(i => cps![i])),
            string s => string.Concat(idx.Select(i => s[i])),
            List<object?> l => idx.Select(i => l[i]).ToList(),
            object?[] t => idx.Select(i => t[i]).ToArray(),
            _ => null,
        };
    }

    private static PyCallable Unsafe(object obj, string name) => new(name, (_, _) =>
        throw new JinjaRuntimeException($"access to attribute '{name}' of '{Py.TypeName(obj)}' object is unsafe."));

    private static PyCallable Bind(object self, string name) => new(Py.TypeName(self) + "." + name, (args, kwargs) => CallMethod(self, name, args, kwargs));

    private static object? Arg(List<object?> args, Dictionary<string, object?> kwargs, int i, string name, object? dflt = null)
    {
        if (i < args.Count) return args[i];
        return kwargs.TryGetValue(name, out var v) ? v : dflt;
    }

    private static string? OptStr(object? v) => v is null or Undefined ? null : v as string ?? Py.Str(v);

    private static object? CallMethod(object self, string name, List<object?> args, Dictionary<string, object?> kwargs)
    {
        switch (self)
        {
            case PyDict d:
                return name switch
                {
                    "items" => d.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList(),
                    "keys" => d.Keys.Cast<object?>().ToList(),
                    "values" => d.Values.ToList(),
                    "get" => Arg(args, kwargs, 0, "key") is { } k && k is not Undefined && d.TryGetValue(k, out var v) ? v : Arg(args, kwargs, 1, "default"),
                    _ => throw new JinjaRuntimeException($"unknown dict method {name}"),
                };
            case string s:
                return StrMethod(s, name, args, kwargs);
            case IReadOnlyList<object?> l:
                var x = Arg(args, kwargs, 0, "value");
                if (name == "count") return (long)l.Count(y => Py.Eq(y, x));
                for (int i = 0; i < l.Count; i++) if (Py.Eq(l[i], x)) return (long)i;
                throw new JinjaRuntimeException($"{Py.Repr(x)} is not in list");
            default:
                throw new JinjaRuntimeException($"unknown method {name}");
        }
    }

    private static object? StrMethod(string s, string name, List<object?> args, Dictionary<string, object?> kwargs)
    {
        switch (name)
        {
            case "strip": return PyStrip(s, OptStr(Arg(args, kwargs, 0, "chars")), true, true);
            case "lstrip": return PyStrip(s, OptStr(Arg(args, kwargs, 0, "chars")), true, false);
            case "rstrip": return PyStrip(s, OptStr(Arg(args, kwargs, 0, "chars")), false, true);
            case "split":
            case "rsplit":
            {
                var sep = OptStr(Arg(args, kwargs, 0, "sep"));
                long max = Arg(args, kwargs, 1, "maxsplit") is { } m and not Undefined ? Py.ToLong(m) : -1;
                return PySplit(s, sep, max, name == "rsplit").Cast<object?>().ToList();
            }
            case "splitlines":
                return s.Split('\n').Select(x => x.TrimEnd('\r')).Take(s.EndsWith('\n') ? s.Split('\n').Length - 1 : int.MaxValue)
                    .Cast<object?>().ToList();
            case "startswith":
            case "endswith":
            {
                var p = Arg(args, kwargs, 0, "prefix");
                var cands = p is object?[] t ? t.Select(Py.Str) : [Py.Str(p)];
                return name == "startswith"
                    ? cands.Any(c => s.StartsWith(c, StringComparison.Ordinal))
                    : cands.Any(c => s.EndsWith(c, StringComparison.Ordinal));
            }
            case "upper": return s.ToUpperInvariant();
            case "lower": return s.ToLowerInvariant();
            case "replace":
            {
                string o = Py.Str(Arg(args, kwargs, 0, "old")), n = Py.Str(Arg(args, kwargs, 1, "new"));
                long count = Arg(args, kwargs, 2, "count") is { } c and not Undefined ? Py.ToLong(c) : -1;
                return PyReplace(s, o, n, count);
            }
            case "title": return PyTitle(s);
            case "capitalize": return s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();
            case "format": return PyFormat(s, args, kwargs);
            case "join": return string.Join(s, Py.Iterate(Arg(args, kwargs, 0, "iterable")).Select(x => x as string ?? throw new JinjaRuntimeException($"sequence item: expected str instance, {Py.TypeName(x)} found")));
            case "find": return (long)s.IndexOf(Py.Str(Arg(args, kwargs, 0, "sub")), StringComparison.Ordinal);
            case "rfind": return (long)s.LastIndexOf(Py.Str(Arg(args, kwargs, 0, "sub")), StringComparison.Ordinal);
            case "count":
            {
                string sub = Py.Str(Arg(args, kwargs, 0, "sub"));
                if (sub.Length == 0) return (long)(s.Length + 1);
                long c = 0;
                for (int i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) c++;
                return c;
            }
            case "isdigit": return s.Length > 0 && s.All(char.IsDigit);
            case "isalpha": return s.Length > 0 && s.All(char.IsLetter);
            case "isalnum": return s.Length > 0 && s.All(char.IsLetterOrDigit);
            case "isspace": return s.Length > 0 && s.All(char.IsWhiteSpace);
            case "isupper": return s.Any(char.IsLetter) && !s.Any(char.IsLower);
            case "islower": return s.Any(char.IsLetter) && !s.Any(char.IsUpper);
            default: throw new JinjaRuntimeException($"'str' object has no attribute '{name}'");
        }
    }

    public static string PyStrip(string s, string? chars, bool left, bool right)
    {
        Func<char, bool> strip = chars is null ? c => char.IsWhiteSpace(c) || (c >= '\x1c' && c <= '\x1f') : chars.Contains;
        int a = 0, b = s.Length;
        if (left) while (a < b && strip(s[a])) a++;
        if (right) while (b > a && strip(s[b - 1])) b--;
        return s[a..b];
    }

    private static List<string> PySplit(string s, string? sep, long max, bool fromRight)
    {
        var parts = new List<string>();
        if (sep is null)
        {
            // Whitespace split: runs of whitespace separate, no empty strings.
            var words = new List<(int Start, int End)>();
            int i = 0;
            while (i < s.Length)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                if (i >= s.Length) break;
                int st = i;
                while (i < s.Length && !char.IsWhiteSpace(s[i])) i++;
                words.Add((st, i));
            }
            if (max < 0 || words.Count <= max + 1) return words.Select(w => s[w.Start..w.End]).ToList();
            if (!fromRight)
            {
                for (int k = 0; k < max; k++) parts.Add(s[words[k].Start..words[k].End]);
                parts.Add(s[words[(int)max].Start..]); // Python keeps the remainder's trailing whitespace
            }
            else
            {
                int first = words.Count - (int)max;
                parts.Add(s[..words[first - 1].End]);
                for (int k = first; k < words.Count; k++) parts.Add(s[words[k].Start..words[k].End]);
            }
            return parts;
        }
        if (sep.Length == 0) throw new JinjaRuntimeException("empty separator");
        var all = s.Split(sep);
        if (max < 0 || all.Length <= max + 1) return [.. all];
        if (!fromRight)
        {
            parts.AddRange(all.Take((int)max));
            parts.Add(string.Join(sep, all.Skip((int)max)));
        }
        else
        {
            parts.Add(string.Join(sep, all.Take(all.Length - (int)max)));
            parts.AddRange(all.Skip(all.Length - (int)max));
        }
        return parts;
    }

    private static string PyReplace(string s, string old, string @new, long count)
    {
        if (count < 0) return old.Length == 0 ? InsertBetween(s, @new, long.MaxValue) : s.Replace(old, @new, StringComparison.Ordinal);
        if (old.Length == 0) return InsertBetween(s, @new, count);
        var sb = new StringBuilder();
        int pos = 0;
        for (long k = 0; k < count; k++)
        {
            int i = s.IndexOf(old, pos, StringComparison.Ordinal);
            if (i < 0) break;
            sb.Append(s, pos, i - pos).Append(@new);
            pos = i + old.Length;
        }
        return sb.Append(s, pos, s.Length - pos).ToString();
    }

    private static string InsertBetween(string s, string ins, long count)
    {
        var sb = new StringBuilder();
        long done = 0;
        for (int i = 0; i <= s.Length; i++)
        {
            if (done < count) { sb.Append(ins); done++; }
            if (i < s.Length) sb.Append(s[i]);
        }
        return sb.ToString();
    }

    /// <summary>Python str.title(): a letter after a non-letter is upper-cased, other letters lower-cased.</summary>
    private static string PyTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        bool prevCased = false;
        foreach (char c in s)
        {
            if (char.IsLetter(c))
            {
                sb.Append(prevCased ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
                prevCased = true;
            }
            else
            {
                sb.Append(c);
                prevCased = false;
            }
        }
        return sb.ToString();
    }

    /// <summary>str.format with {}, {0}, {name} and {{ }} (no format specs beyond none).</summary>
    private static string PyFormat(string fmt, List<object?> args, Dictionary<string, object?> kwargs)
    {
        var sb = new StringBuilder();
        int auto = 0;
        for (int i = 0; i < fmt.Length; i++)
        {
            char c = fmt[i];
            if (c == '{' && i + 1 < fmt.Length && fmt[i + 1] == '{') { sb.Append('{'); i++; continue; }
            if (c == '}' && i + 1 < fmt.Length && fmt[i + 1] == '}') { sb.Append('}'); i++; continue; }
            if (c != '{') { sb.Append(c); continue; }
            int end = fmt.IndexOf('}', i);
            if (end < 0) throw new JinjaRuntimeException("Single '{' encountered in format string");
            string field = fmt[(i + 1)..end];
            if (field.Contains(':') || field.Contains('!')) throw new JinjaRuntimeException("format specs are not supported in str.format");
            object? v;
            if (field.Length == 0) v = auto < args.Count ? args[auto++] : throw new JinjaRuntimeException("Replacement index out of range");
            else if (int.TryParse(field, out int idx)) v = idx < args.Count ? args[idx] : throw new JinjaRuntimeException("Replacement index out of range");
            else v = kwargs.TryGetValue(field, out var kv) ? kv : throw new JinjaRuntimeException($"KeyError: '{field}'");
            sb.Append(Py.Str(v));
            i = end;
        }
        return sb.ToString();
    }

    [GeneratedRegex(@"([-\s({\[<]+)")]
    private static partial Regex WordBeginningSplit();

    // ---- filters -------------------------------------------------------------------------------

    public static object? Filter(string name, object? value, List<object?> args, Dictionary<string, object?> kwargs)
    {
        switch (name)
        {
            case "trim": return PyStrip(Py.Str(value), OptStr(Arg(args, kwargs, 0, "chars")), true, true);
            case "length":
            case "count": return Py.Length(value);
            case "upper": return Py.Str(value).ToUpperInvariant();
            case "lower": return Py.Str(value).ToLowerInvariant();
            case "capitalize":
            {
                string s = Py.Str(value);
                return s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();
            }
            case "title":
                // jinja2 do_title: split on runs of -, whitespace and opening brackets; capitalise each piece.
                return string.Concat(WordBeginningSplit().Split(Py.Str(value))
                    .Where(p => p.Length > 0)
                    .Select(p => char.ToUpperInvariant(p[0]) + p[1..].ToLowerInvariant()));
            case "default":
            case "d":
            {
                var dflt = Arg(args, kwargs, 0, "default_value", "");
                bool boolean = Py.IsTrue(Arg(args, kwargs, 1, "boolean", false));
                return value is Undefined || (boolean && !Py.IsTrue(value)) ? dflt : value;
            }
            case "tojson":
            {
                var indent = Arg(args, kwargs, 0, "indent");
                bool sortKeys = Py.IsTrue(Arg(args, kwargs, 3, "sort_keys", false));
                return PyJson.Dumps(value, indent is null or Undefined ? null : (int)Py.ToLong(indent), sortKeys);
            }
            case "join":
            {
                string sep = Py.Str(Arg(args, kwargs, 0, "d", ""));
                var attr = Arg(args, kwargs, 1, "attribute");
                var items = Py.Iterate(value);
                if (attr is not null and not Undefined) items = items.Select(x => AttrPath(x, attr)).ToList();
                return string.Join(sep, items.Select(Py.Str));
            }
            case "first":
            {
                var items = Py.Iterate(value);
                return items.Count > 0 ? items[0] : new Undefined("No first item, sequence was empty.");
            }
            case "last":
            {
                var items = Py.Iterate(value);
                return items.Count > 0 ? items[^1] : new Undefined("No last item, sequence was empty.");
            }
            case "list": return Py.Iterate(value).ToList();
            case "replace":
            {
                string o = Py.Str(Arg(args, kwargs, 0, "old")), n = Py.Str(Arg(args, kwargs, 1, "new"));
                long count = Arg(args, kwargs, 2, "count") is { } c and not Undefined ? Py.ToLong(c) : -1;
                return PyReplace(Py.Str(value), o, n, count);
            }
            case "string": return Py.Str(value);
            case "safe": return value;
            case "int":
            {
                var dflt = Arg(args, kwargs, 0, "default", 0L);
                return value switch
                {
                    long or bool => (object)Py.ToLong(value),
                    double d => (object)(long)d,
                    string s when long.TryParse(s.Trim().Replace("_", ""), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long l) => l,
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d2) => (long)d2,
                    _ => dflt,
                };
            }
            case "float":
            {
                var dflt = Arg(args, kwargs, 0, "default", 0.0);
                return value switch
                {
                    long or bool or double => Py.ToDouble(value),
                    string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
                    _ => dflt,
                };
            }
            case "abs":
                return value switch
                {
                    double d => (object)Math.Abs(d),
                    long or bool => (object)Math.Abs(Py.ToLong(value)),
                    _ => throw new JinjaRuntimeException($"bad operand type for abs(): '{Py.TypeName(value)}'"),
                };
            case "round":
            {
                int precision = (int)Py.ToLong(Arg(args, kwargs, 0, "precision", 0L));
                string method = Py.Str(Arg(args, kwargs, 1, "method", "common"));
                // 'common' is Python's round(): ties to even, and an int stays an int.
                if (method == "common" && value is long or bool) return Py.ToLong(value);
                double v = Py.ToDouble(value), f = Math.Pow(10, precision);
                return method switch
                {
                    "ceil" => Math.Ceiling(v * f) / f,
                    "floor" => Math.Floor(v * f) / f,
                    _ => Math.Round(v, Math.Clamp(precision, 0, 15), MidpointRounding.ToEven),
                };
            }
            case "items":
                if (value is Undefined) return new List<object?>();
                if (value is not PyDict dict) throw new JinjaRuntimeException("Can only get item pairs from a mapping.");
                return dict.Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList();
            case "dictsort":
                if (value is not PyDict dd) throw new JinjaRuntimeException("dictsort expects a mapping");
                return dd.OrderBy(kv => kv.Key, Comparer<object>.Create((a, b) => Py.Compare(
                        a is string sa ? sa.ToLowerInvariant() : a, b is string sb ? sb.ToLowerInvariant() : b, "<")))
                    .Select(kv => (object?)new object?[] { kv.Key, kv.Value }).ToList();
            case "reverse":
                if (value is string rs) return string.Concat(Py.CodePoints(rs).Reverse());
                return Py.Iterate(value).Reverse().ToList();
            case "unique":
            {
                var result = new List<object?>();
                foreach (var x in Py.Iterate(value))
                {
                    var key = x is string xs ? xs.ToLowerInvariant() : x;
                    if (!result.Any(r => Py.Eq(r is string rs2 ? rs2.ToLowerInvariant() : r, key))) result.Add(x);
                }
                return result;
            }
            case "sort":
            {
                bool reverse = Py.IsTrue(Arg(args, kwargs, 0, "reverse", false));
                bool caseSensitive = Py.IsTrue(Arg(args, kwargs, 1, "case_sensitive", false));
                var attr = Arg(args, kwargs, 2, "attribute");
                object? Key(object? x)
                {
                    var k = attr is null or Undefined ? x : AttrPath(x, attr);
                    return !caseSensitive && k is string ks ? ks.ToLowerInvariant() : k;
                }
                var sorted = Py.Iterate(value).Select(x => (Key: Key(x), Item: x)).ToList();
                // List.Sort is not stable; Python's sort is. OrderBy is stable.
                var ordered = sorted.OrderBy(p => p.Key, Comparer<object?>.Create((a, b) => Py.Compare(a, b, "<"))).Select(p => p.Item).ToList();
                if (reverse) ordered = sorted.OrderByDescending(p => p.Key, Comparer<object?>.Create((a, b) => Py.Compare(a, b, "<"))).Select(p => p.Item).ToList();
                return ordered;
            }
            case "sum":
            {
                var attr = Arg(args, kwargs, 0, "attribute");
                object? acc = Arg(args, kwargs, 1, "start", 0L);
                foreach (var x in Py.Iterate(value)) acc = Py.Add(acc, attr is null or Undefined ? x : AttrPath(x, attr));
                return acc;
            }
            case "min":
            case "max":
            {
                var items = Py.Iterate(value);
                if (items.Count == 0) return new Undefined($"No aggregated item, sequence was empty.");
                var best = items[0];
                foreach (var x in items.Skip(1))
                {
                    int c = Py.Compare(x is string a ? a.ToLowerInvariant() : x, best is string b ? b.ToLowerInvariant() : best, "<");
                    if (name == "min" ? c < 0 : c > 0) best = x;
                }
                return best;
            }
            case "format":
            {
                var fmtArgs = args.Count == 1 ? args[0] : args.ToArray();
                return Py.Mod(Py.Str(value), args.Count == 1 && args[0] is not object?[] ? args[0] : fmtArgs);
            }
            case "indent":
            {
                var width = Arg(args, kwargs, 0, "width", 4L);
                bool first = Py.IsTrue(Arg(args, kwargs, 1, "first", false));
                bool blank = Py.IsTrue(Arg(args, kwargs, 2, "blank", false));
                string ind = width is string ws ? ws : new string(' ', (int)Py.ToLong(width));
                string s = Py.Str(value) + "\n";
                var lines = SplitLines(s);
                string rv;
                if (blank) rv = string.Join("\n" + ind, lines);
                else
                {
                    rv = lines[0];
                    if (lines.Count > 1) rv += "\n" + string.Join("\n", lines.Skip(1).Select(l => l.Length > 0 ? ind + l : l));
                }
                return first ? ind + rv : rv;
            }
            case "selectattr":
            case "rejectattr":
            case "select":
            case "reject":
            {
                bool byAttr = name.EndsWith("attr", StringComparison.Ordinal);
                bool keep = name.StartsWith("select", StringComparison.Ordinal);
                int k = 0;
                object? attr = byAttr ? args[k++] : null;
                string? test = k < args.Count ? Py.Str(args[k++]) : null;
                var testArgs = args.Skip(k).ToList();
                var result = new List<object?>();
                // Jinja2 only iterates a truthy value here: none | selectattr(...) is empty, not an error.
                foreach (var x in Py.IsTrue(value) ? Py.Iterate(value) : [])
                {
                    var v = byAttr ? AttrPath(x, attr!) : x;
                    bool ok = test is null ? Py.IsTrue(v) : Test(test, v, testArgs);
                    if (ok == keep) result.Add(x);
                }
                return result;
            }
            case "map":
            {
                if (!Py.IsTrue(value)) return new List<object?>();
                if (kwargs.TryGetValue("attribute", out var attr))
                {
                    bool hasDefault = kwargs.TryGetValue("default", out var dflt);
                    return Py.Iterate(value).Select(x =>
                    {
                        var v = AttrPath(x, attr);
                        return hasDefault && v is Undefined ? dflt : v;
                    }).ToList();
                }
                if (args.Count == 0) throw new JinjaRuntimeException("map requires a filter name or attribute=");
                string f = Py.Str(args[0]);
                var fargs = args.Skip(1).ToList();
                return Py.Iterate(value).Select(x => Filter(f, x, fargs, new Dictionary<string, object?>())).ToList();
            }
            default:
                throw new JinjaRuntimeException($"No filter named '{name}'.");
        }
    }

    private static List<string> SplitLines(string s)
    {
        // Python str.splitlines for \n-normalised text: no trailing empty element.
        var parts = s.Split('\n').ToList();
        if (parts.Count > 0 && parts[^1].Length == 0) parts.RemoveAt(parts.Count - 1);
        return parts;
    }

    /// <summary>Jinja2 make_attrgetter: "a.b.0" walks attributes / items.</summary>
    private static object? AttrPath(object? x, object? attr)
    {
        if (attr is long l) return GetItem(x, l);
        foreach (var part in Py.Str(attr).Split('.'))
            x = long.TryParse(part, out long idx) ? GetItem(x, idx) : GetItem(x, part);
        return x;
    }

    // ---- tests ---------------------------------------------------------------------------------

    public static bool Test(string name, object? v, List<object?> args)
    {
        object? A(int i) => i < args.Count ? args[i] : throw new JinjaRuntimeException($"test '{name}' needs an argument");
        switch (name)
        {
            case "defined": return v is not Undefined;
            case "undefined": return v is Undefined;
            case "none": return v is null;
            case "string": return v is string;
            case "mapping": return v is PyDict;
            case "iterable": return v is string or List<object?> or object?[] or PyDict or Undefined;
            case "sequence": return v is string or List<object?> or object?[] or PyDict or Undefined;
            case "number": return v is long or double or bool;
            case "integer": return v is long;
            case "float": return v is double;
            case "boolean": return v is bool;
            case "true": return v is true;
            case "false": return v is false;
            case "callable": return v is PyCallable;
            case "odd": return Py.ToLong(Py.Mod(v, 2L)) == 1;
            case "even": return Py.ToLong(Py.Mod(v, 2L)) == 0;
            case "divisibleby": return Py.ToLong(Py.Mod(v, A(0))) == 0;
            case "eq" or "equalto" or "==": return Py.Eq(v, A(0));
            case "ne" or "!=": return !Py.Eq(v, A(0));
            case "lt" or "lessthan" or "<": return Py.Compare(v, A(0), "<") < 0;
            case "le" or "<=": return Py.Compare(v, A(0), "<=") <= 0;
            case "gt" or "greaterthan" or ">": return Py.Compare(v, A(0), ">") > 0;
            case "ge" or ">=": return Py.Compare(v, A(0), ">=") >= 0;
            case "in": return Py.Contains(A(0), v);
            case "sameas": return ReferenceEquals(v, A(0)) || (v is null && A(0) is null) || (v is bool b && A(0) is bool b2 && b == b2);
            case "lower": return Py.Str(v) is var ls && ls.Any(char.IsLetter) && !ls.Any(char.IsUpper);
            case "upper": return Py.Str(v) is var us && us.Any(char.IsLetter) && !us.Any(char.IsLower);
            case "escaped": return false;
            default: throw new JinjaRuntimeException($"No test named '{name}'.");
        }
    }
}

using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Actors.Engine.Chat.Jinja;

// Value model of the interpreter, chosen to mirror the Python objects transformers hands to Jinja2:
//   None -> null, bool -> bool, int -> long, float -> double, str -> string,
//   list -> List<object?>, tuple -> object?[], dict -> PyDict (insertion ordered),
//   jinja2.Undefined -> Undefined, namespace() -> Namespace, callables -> PyCallable.

/// <summary>Jinja2's default <c>Undefined</c>: prints as '', is falsy and empty, fails on any further use.</summary>
internal sealed class Undefined(string hint)
{
    public string Hint { get; } = hint;

    public ChatTemplateException Fail() => new JinjaRuntimeException(Hint);
}

/// <summary>A run-time error raised by the interpreter itself (not by raise_exception); gets a location prefix.</summary>
internal sealed class JinjaRuntimeException(string message) : ChatTemplateException(message);

/// <summary>A Python dict with Python key equality (1 == 1.0 == True) and insertion order.</summary>
internal sealed class PyDict : Dictionary<object, object?>
{
    public PyDict() : base(PyKeyComparer.Instance) { }
}

internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();

    public new bool Equals(object? x, object? y) => Py.Eq(x, y);

    public int GetHashCode(object obj) => obj switch
    {
        bool b => (b ? 1L : 0L).GetHashCode(),
        double d when d == Math.Floor(d) && Math.Abs(d) < 9e18 => ((long)d).GetHashCode(),
        _ => obj.GetHashCode(),
    };
}

/// <summary><c>namespace(...)</c>: the one mutable object a template may assign attributes on.</summary>
internal sealed class Namespace
{
    public Dictionary<string, object?> Attributes { get; } = new(StringComparer.Ordinal);
}

/// <summary>Anything callable from a template: globals, macros, bound methods.</summary>
internal sealed class PyCallable(string name, Func<List<object?>, Dictionary<string, object?>, object?> invoke)
{
    public string Name { get; } = name;
    public object? Invoke(List<object?> args, Dictionary<string, object?> kwargs) => invoke(args, kwargs);
}

/// <summary>Python semantics for the operations templates use.</summary>
internal static class Py
{
    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        List<object?> => "list",
        object?[] => "tuple",
        PyDict => "dict",
        Namespace => "Namespace",
        Undefined => "Undefined",
        PyCallable => "function",
        LoopContext => "LoopContext",
        _ => v.GetType().Name,
    };

    public static bool IsTrue(object? v) => v switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length != 0,
        List<object?> l => l.Count != 0,
        object?[] t => t.Length != 0,
        PyDict d => d.Count != 0,
        Undefined => false,
        _ => true,
    };

    public static bool IsNumber(object? v) => v is long or double or bool;

    /// <summary>Python <c>str(v)</c>, which is what <c>{{ v }}</c> prints (Undefined prints '').</summary>
    public static string Str(object? v) => v switch
    {
        null => "None",
        bool b => b ? "True" : "False",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => FloatRepr(d),
        string s => s,
        Undefined => "",
        _ => Repr(v),
    };

    /// <summary>Python <c>repr(v)</c> (used inside containers).</summary>
    public static string Repr(object? v)
    {
        switch (v)
        {
            case string s: return StrRepr(s);
            case List<object?> list: return "[" + string.Join(", ", list.Select(Repr)) + "]";
            case object?[] t: return t.Length == 1 ? "(" + Repr(t[0]) + ",)" : "(" + string.Join(", ", t.Select(Repr)) + ")";
            case PyDict d: return "{" + string.Join(", ", d.Select(kv => Repr(kv.Key) + ": " + Repr(kv.Value))) + "}";
            case Namespace ns: return "<Namespace " + string.Join(", ", ns.Attributes.Select(kv => kv.Key + "=" + Repr(kv.Value))) + ">";
            case PyCallable c: return "<function " + c.Name + ">";
            case Undefined: return "";
            default: return Str(v);
        }
    }

    private static string StrRepr(string s)
    {
        char quote = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        var sb = new StringBuilder(s.Length + 2).Append(quote);
        foreach (char c in s)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == quote) sb.Append('\\').Append(c);
                    else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        return sb.Append(quote).ToString();
    }

    /// <summary>Python float repr: shortest round-trip digits, scientific below 1e-4 and from 1e16.</summary>
    public static string FloatRepr(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsPositiveInfinity(d)) return "inf";
        if (double.IsNegativeInfinity(d)) return "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";
        // "R" gives the shortest round-trip digits; take them and the exponent and lay them out as Python does.
        string shortest = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);
        // Parse shortest into digits + decimal exponent.
        string mant = shortest, expPart = "0";
        int e = shortest.IndexOfAny(['E', 'e']);
        if (e >= 0) { mant = shortest[..e]; expPart = shortest[(e + 1)..]; }
        int exp10 = int.Parse(expPart, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        int dot = mant.IndexOf('.');
        string intDigits = dot >= 0 ? mant[..dot] : mant;
        string fracDigits = dot >= 0 ? mant[(dot + 1)..] : "";
        string digits = (intDigits + fracDigits).TrimStart('0');
        int leadingZerosRemoved = (intDigits + fracDigits).Length - digits.Length;
        // value = 0.digits * 10^(pointPos) where pointPos = intDigits.Length + exp10 - leadingZerosRemoved
        int pointPos = intDigits.Length + exp10 - leadingZerosRemoved;
        digits = digits.TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        int sciExp = pointPos - 1; // exponent of the first significant digit
        string sign = d < 0 ? "-" : "";
        if (sciExp < -4 || sciExp >= 16)
        {
            string m = digits.Length == 1 ? digits : digits[0] + "." + digits[1..];
            return sign + m + "e" + (sciExp < 0 ? "-" : "+") + Math.Abs(sciExp).ToString("00", CultureInfo.InvariantCulture);
        }
        if (pointPos <= 0) return sign + "0." + new string('0', -pointPos) + digits;
        if (pointPos >= digits.Length) return sign + digits + new string('0', pointPos - digits.Length) + ".0";
        return sign + digits[..pointPos] + "." + digits[pointPos..];
    }

    public static bool Eq(object? a, object? b)
    {
        if (a is Undefined || b is Undefined) return a is Undefined && b is Undefined;
        if (a is null || b is null) return a is null && b is null;
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a) == ToDouble(b);
            return ToLong(a) == ToLong(b);
        }
        switch (a)
        {
            case string sa: return b is string sb && sa == sb;
            case List<object?> la: return b is List<object?> lb && SeqEq(la, lb);
            case object?[] ta: return b is object?[] tb && SeqEq(ta, tb);
            case PyDict da:
                if (b is not PyDict db || da.Count != db.Count) return false;
                foreach (var kv in da)
                    if (!db.TryGetValue(kv.Key, out var other) || !Eq(kv.Value, other)) return false;
                return true;
            default: return ReferenceEquals(a, b) || a.Equals(b);
        }
    }

    private static bool SeqEq(IReadOnlyList<object?> a, IReadOnlyList<object?> b)
    {
        if (a.Count != b.Count) return false;
        for (int i = 0; i < a.Count; i++) if (!Eq(a[i], b[i])) return false;
        return true;
    }

    public static long ToLong(object? v) => v switch
    {
        bool b => b ? 1 : 0,
        long l => l,
        double d => (long)d,
        _ => throw new JinjaRuntimeException($"expected a number, got {TypeName(v)}"),
    };

    public static double ToDouble(object? v) => v switch
    {
        bool b => b ? 1 : 0,
        long l => l,
        double d => d,
        _ => throw new JinjaRuntimeException($"expected a number, got {TypeName(v)}"),
    };

    /// <summary>Python ordering (&lt;): numbers, strings (by code point), sequences lexicographically.</summary>
    public static int Compare(object? a, object? b, string op)
    {
        if (a is Undefined ua) throw ua.Fail();
        if (b is Undefined ub) throw ub.Fail();
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a).CompareTo(ToDouble(b));
            return ToLong(a).CompareTo(ToLong(b));
        }
        if (a is string sa && b is string sb) return string.CompareOrdinal(sa, sb) switch { < 0 => -1, > 0 => 1, _ => 0 };
        if (a is IReadOnlyList<object?> la && b is IReadOnlyList<object?> lb && a.GetType() == b.GetType())
        {
            for (int i = 0; i < Math.Min(la.Count, lb.Count); i++)
            {
                if (Eq(la[i], lb[i])) continue;
                return Compare(la[i], lb[i], op);
            }
            return la.Count.CompareTo(lb.Count);
        }
        throw new JinjaRuntimeException($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    public static object? Add(object? a, object? b)
    {
        Check(a); Check(b);
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? (object)(ToDouble(a) + ToDouble(b)) : (object)(ToLong(a) + ToLong(b));
        if (a is string sa && b is string sb) return sa + sb;
        if (a is List<object?> la && b is List<object?> lb) return new List<object?>(la.Concat(lb));
        if (a is object?[] ta && b is object?[] tb) return ta.Concat(tb).ToArray();
        throw BadOperands("+", a, b);
    }

    public static object? Sub(object? a, object? b)
    {
        Check(a); Check(b);
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? (object)(ToDouble(a) - ToDouble(b)) : (object)(ToLong(a) - ToLong(b));
        throw BadOperands("-", a, b);
    }

    public static object? Mul(object? a, object? b)
    {
        Check(a); Check(b);
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? (object)(ToDouble(a) * ToDouble(b)) : (object)(ToLong(a) * ToLong(b));
        if (a is string s && b is long or bool) return Repeat(s, ToLong(b));
        if (b is string s2 && a is long or bool) return Repeat(s2, ToLong(a));
        if (a is List<object?> l && b is long or bool)
        {
            var r = new List<object?>();
            for (long i = 0; i < ToLong(b); i++) r.AddRange(l);
            return r;
        }
        throw BadOperands("*", a, b);
    }

    private static string Repeat(string s, long n) => n <= 0 ? "" : string.Concat(Enumerable.Repeat(s, (int)n));

    public static object? TrueDiv(object? a, object? b)
    {
        Check(a); Check(b);
        if (!IsNumber(a) || !IsNumber(b)) throw BadOperands("/", a, b);
        double db = ToDouble(b);
        if (db == 0) throw new JinjaRuntimeException("division by zero");
        return ToDouble(a) / db;
    }

    public static object? FloorDiv(object? a, object? b)
    {
        Check(a); Check(b);
        if (!IsNumber(a) || !IsNumber(b)) throw BadOperands("//", a, b);
        if (a is double || b is double)
        {
            double db = ToDouble(b);
            if (db == 0) throw new JinjaRuntimeException("float floor division by zero");
            return Math.Floor(ToDouble(a) / db);
        }
        long x = ToLong(a), y = ToLong(b);
        if (y == 0) throw new JinjaRuntimeException("integer division or modulo by zero");
        long q = x / y;
        if ((x % y != 0) && ((x < 0) != (y < 0))) q--;
        return q;
    }

    public static object? Mod(object? a, object? b)
    {
        Check(a); Check(b);
        if (a is string fmt) return PercentFormat(fmt, b);
        if (!IsNumber(a) || !IsNumber(b)) throw BadOperands("%", a, b);
        if (a is double || b is double)
        {
            double x = ToDouble(a), y = ToDouble(b);
            if (y == 0) throw new JinjaRuntimeException("float modulo");
            double r = x % y;
            if (r != 0 && (r < 0) != (y < 0)) r += y;
            return r;
        }
        long p = ToLong(a), q = ToLong(b);
        if (q == 0) throw new JinjaRuntimeException("integer division or modulo by zero");
        long m = p % q;
        if (m != 0 && (m < 0) != (q < 0)) m += q;
        return m;
    }

    private static string PercentFormat(string fmt, object? args)
    {
        var values = args is object?[] t ? t.ToList() : [args];
        var sb = new StringBuilder();
        int k = 0;
        for (int i = 0; i < fmt.Length; i++)
        {
            if (fmt[i] != '%' || i + 1 >= fmt.Length) { sb.Append(fmt[i]); continue; }
            char c = fmt[++i];
            if (c == '%') { sb.Append('%'); continue; }
            if (k >= values.Count) throw new JinjaRuntimeException("not enough arguments for format string");
            object? v = values[k++];
            sb.Append(c switch
            {
                's' => Str(v),
                'r' => Repr(v),
                'd' or 'i' => ToLong(v).ToString(CultureInfo.InvariantCulture),
                _ => throw new JinjaRuntimeException($"unsupported format character '{c}'"),
            });
        }
        return sb.ToString();
    }

    public static object? Pow(object? a, object? b)
    {
        Check(a); Check(b);
        if (!IsNumber(a) || !IsNumber(b)) throw BadOperands("**", a, b);
        if (a is double || b is double || ToLong(b) < 0) return (object)Math.Pow(ToDouble(a), ToDouble(b));
        long r = 1, x = ToLong(a);
        for (long e = ToLong(b); e > 0; e--) r *= x;
        return r;
    }

    public static object? Neg(object? a)
    {
        Check(a);
        return a switch
        {
            double d => (object)(-d),
            long or bool => (object)(-ToLong(a)),
            _ => throw new JinjaRuntimeException($"bad operand type for unary -: '{TypeName(a)}'"),
        };
    }

    private static void Check(object? v)
    {
        if (v is Undefined u) throw u.Fail();
    }

    private static JinjaRuntimeException BadOperands(string op, object? a, object? b) =>
        new($"unsupported operand type(s) for {op}: '{TypeName(a)}' and '{TypeName(b)}'");

    /// <summary>Python <c>item in container</c>.</summary>
    public static bool Contains(object? container, object? item)
    {
        switch (container)
        {
            case string s:
                if (item is not string sub) throw new JinjaRuntimeException($"'in <string>' requires string as left operand, not {TypeName(item)}");
                return s.Contains(sub, StringComparison.Ordinal);
            case PyDict d: return item is not null && item is not Undefined && d.ContainsKey(item);
            case Undefined: return false;
            case Namespace ns: return item is string key && ns.Attributes.ContainsKey(key);
            case IEnumerable<object?> seq: return seq.Any(x => Eq(x, item));
            default: throw new JinjaRuntimeException($"argument of type '{TypeName(container)}' is not iterable");
        }
    }

    /// <summary>Python iteration: strings yield characters, dicts yield keys, Undefined yields nothing.</summary>
    public static IReadOnlyList<object?> Iterate(object? v) => v switch
    {
        List<object?> l => l,
        object?[] t => t,
        string s => CodePoints(s).Cast<object?>().ToList(),
        PyDict d => d.Keys.Cast<object?>().ToList(),
        Undefined => [],
        _ => throw new JinjaRuntimeException($"'{TypeName(v)}' object is not iterable"),
    };

    /// <summary>Python strings are sequences of code points: a surrogate pair is one character.</summary>
    public static string[] CodePoints(string s)
    {
        var r = new List<string>(s.Length);
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { r.Add(s.Substring(i, 2)); i++; }
            else r.Add(s[i].ToString());
        }
        return [.. r];
    }

    public static bool HasSurrogates(string s) => s.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') >= 0;

    public static long Length(object? v) => v switch
    {
        string s => HasSurrogates(s) ? CodePoints(s).Length : s.Length,
        List<object?> l => l.Count,
        object?[] t => t.Length,
        PyDict d => d.Count,
        Undefined => 0,
        _ => throw new JinjaRuntimeException($"object of type '{TypeName(v)}' has no len()"),
    };

    /// <summary>Converts a .NET value (including JSON) to the interpreter's value model.</summary>
    public static object? FromClr(object? v)
    {
        switch (v)
        {
            case null: return null;
            case string or bool or long or double or Undefined or PyDict or Namespace or PyCallable: return v;
            case int i: return (long)i;
            case short s: return (long)s;
            case byte b: return (long)b;
            case uint ui: return (long)ui;
            case float f: return (double)f;
            case decimal m: return (double)m;
            case JsonElement je: return FromJson(je);
            case ChatMessage msg:
                return new PyDict { ["role"] = msg.Role, ["content"] = msg.Content };
            case System.Collections.IDictionary dict:
            {
                var d = new PyDict();
                foreach (System.Collections.DictionaryEntry e in dict) d[FromClr(e.Key)!] = FromClr(e.Value);
                return d;
            }
            case IEnumerable<KeyValuePair<string, object?>> pairs:
            {
                var d = new PyDict();
                foreach (var kv in pairs) d[kv.Key] = FromClr(kv.Value);
                return d;
            }
            case System.Collections.IEnumerable seq:
            {
                var l = new List<object?>();
                foreach (var x in seq) l.Add(FromClr(x));
                return l;
            }
            default: return v;
        }
    }

    public static object? FromJson(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.Undefined => null,
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => e.GetString(),
        JsonValueKind.Number => e.TryGetInt64(out long l) && !e.GetRawText().Contains('.') && !e.GetRawText().Contains('e') && !e.GetRawText().Contains('E')
            ? (object)l : (object)e.GetDouble(),
        JsonValueKind.Array => e.EnumerateArray().Select(FromJson).ToList(),
        JsonValueKind.Object => e.EnumerateObject().Aggregate(new PyDict(), (d, p) => { d[p.Name] = FromJson(p.Value); return d; }),
        _ => null,
    };
}

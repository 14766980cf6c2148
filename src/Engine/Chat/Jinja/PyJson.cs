using System.Globalization;
using System.Text;

namespace Actors.Engine.Chat.Jinja;

/// <summary>
/// Python's <c>json.dumps(x, ensure_ascii=False, indent=indent, sort_keys=sort_keys)</c>, which is what
/// transformers installs as the <c>tojson</c> filter (no HTML escaping, unlike Jinja2's own tojson).
/// Separators are (', ', ': ') without indent and (',', ': ') with it.
/// </summary>
internal static class PyJson
{
    public static string Dumps(object? value, int? indent, bool sortKeys)
    {
        var sb = new StringBuilder();
        Write(sb, value, indent, sortKeys, 0);
        return sb.ToString();
    }

    private static void Write(StringBuilder sb, object? v, int? indent, bool sortKeys, int level)
    {
        switch (v)
        {
            case null: sb.Append("null"); return;
            case bool b: sb.Append(b ? "true" : "false"); return;
            case long l: sb.Append(l.ToString(CultureInfo.InvariantCulture)); return;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : Py.FloatRepr(d));
                return;
            case string s: WriteString(sb, s); return;
            case IReadOnlyList<object?> list:
                if (list.Count == 0) { sb.Append("[]"); return; }
                sb.Append('[');
                for (int i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(indent is null ? ", " : ",");
                    NewLine(sb, indent, level + 1);
                    Write(sb, list[i], indent, sortKeys, level + 1);
                }
                NewLine(sb, indent, level);
                sb.Append(']');
                return;
            case PyDict dict:
            {
                if (dict.Count == 0) { sb.Append("{}"); return; }
                var pairs = dict.Select(kv => (Key: KeyString(kv.Key), kv.Value)).ToList();
                if (sortKeys) pairs = pairs.OrderBy(p => p.Key, StringComparer.Ordinal).ToList();
                sb.Append('{');
                for (int i = 0; i < pairs.Count; i++)
                {
                    if (i > 0) sb.Append(indent is null ? ", " : ",");
                    NewLine(sb, indent, level + 1);
                    WriteString(sb, pairs[i].Key);
                    sb.Append(": ");
                    Write(sb, pairs[i].Value, indent, sortKeys, level + 1);
                }
                NewLine(sb, indent, level);
                sb.Append('}');
                return;
            }
            default:
                throw new JinjaRuntimeException($"Object of type {Py.TypeName(v)} is not JSON serializable");
        }
    }

    private static string KeyString(object key) => key switch
    {
        string s => s,
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => Py.FloatRepr(d),
        _ => throw new JinjaRuntimeException($"keys must be str, int, float, bool or None, not {Py.TypeName(key)}"),
    };

    private static void NewLine(StringBuilder sb, int? indent, int level)
    {
        if (indent is null) return;
        sb.Append('\n').Append(' ', indent.Value * level);
    }

    private static void WriteString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}

using System.Globalization;
using System.Text;

namespace Actors.Engine.Chat.Jinja;

internal enum TokenKind { Data, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Integer, Float, Operator, Eof }

internal readonly record struct Token(TokenKind Kind, string Text, object? Value, int Offset);

/// <summary>
/// Splits template source into tokens with Jinja2's whitespace rules as transformers configures them
/// (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False):
///  - '{%-' / '{{-' / '{#-' strip all whitespace before the tag; '-%}' / '-}}' / '-#}' strip all after it;
///  - lstrip_blocks: a '{%' or '{#' (not '{{', not '{%+') preceded on its line only by spaces/tabs takes
///    that indentation away;
///  - trim_blocks: the first newline after '%}' or '#}' (not '+%}') is dropped;
///  - line endings are normalised to '\n' and one trailing newline of the source is dropped.
/// </summary>
internal sealed class Lexer(string source, string sourceName, bool trimBlocks = true, bool lstripBlocks = true)
{
    private readonly string _src = Normalize(source);
    private readonly List<Token> _tokens = [];
    private int _pos;

    public string Text => _src;

    private static string Normalize(string s)
    {
        s = s.Replace("\r\n", "\n").Replace('\r', '\n');
        return s.EndsWith('\n') ? s[..^1] : s;
    }

    public ChatTemplateSyntaxException Error(int offset, string problem)
    {
        var (line, col) = LineCol(_src, offset);
        return new ChatTemplateSyntaxException(sourceName, line, col, problem);
    }

    public static (int Line, int Column) LineCol(string text, int offset)
    {
        int line = 1, col = 1;
        for (int i = 0; i < offset && i < text.Length; i++)
        {
            if (text[i] == '\n') { line++; col = 1; }
            else col++;
        }
        return (line, col);
    }

    public List<Token> Tokenize()
    {
        while (_pos < _src.Length)
        {
            int tag = FindTagStart(_pos);
            if (tag < 0)
            {
                Emit(TokenKind.Data, _src[_pos..], _pos);
                _pos = _src.Length;
                break;
            }
            string text = _src[_pos..tag];
            char kind = _src[tag + 1];
            int p = tag + 2;
            char sign = p < _src.Length && (_src[p] == '-' || _src[p] == '+') ? _src[p] : '\0';
            if (sign == '-') text = text.TrimEnd();
            else if (sign != '+' && lstripBlocks && kind != '{')
            {
                int lpos = text.LastIndexOf('\n') + 1;
                bool lineStarting = _pos == 0 || _src[_pos - 1] == '\n';
                if ((lpos > 0 || lineStarting) && lpos < text.Length && text[lpos..].All(IsPySpace))
                    text = text[..lpos];
            }
            if (text.Length > 0) Emit(TokenKind.Data, text, _pos);
            if (sign != '\0') p++;
            switch (kind)
            {
                case '#': LexComment(tag, p); break;
                case '{':
                    Emit(TokenKind.VarBegin, "{{", tag);
                    LexInside(p, isBlock: false);
                    break;
                default:
                    if (TryRaw(tag, p)) break;
                    Emit(TokenKind.BlockBegin, "{%", tag);
                    LexInside(p, isBlock: true);
                    break;
            }
        }
        _tokens.Add(new Token(TokenKind.Eof, "", null, _src.Length));
        return _tokens;
    }

    private static bool IsPySpace(char c) => char.IsWhiteSpace(c) || (c >= '\x1c' && c <= '\x1f');

    private int FindTagStart(int from)
    {
        for (int i = from; i + 1 < _src.Length; i++)
        {
            if (_src[i] == '{' && (_src[i + 1] == '{' || _src[i + 1] == '%' || _src[i + 1] == '#')) return i;
        }
        return -1;
    }

    private void Emit(TokenKind kind, string text, int offset, object? value = null) =>
        _tokens.Add(new Token(kind, text, value, offset));

    private void LexComment(int tag, int p)
    {
        int end = _src.IndexOf("#}", p, StringComparison.Ordinal);
        if (end < 0) throw Error(tag, "unclosed comment ('{#' without '#}')");
        // '-#}' / '+#}' only count when the sign is inside the comment body (not the '{#-' sign itself).
        bool minus = end - 1 >= p && _src[end - 1] == '-';
        bool plus = end - 1 >= p && _src[end - 1] == '+';
        _pos = AfterTagEnd(end + 2, minus, plus);
    }

    /// <summary>Position after a '%}'/'#}' (or '}}' when isVar) applying '-' and trim_blocks rules.</summary>
    private int AfterTagEnd(int afterEnd, bool minus, bool plus, bool isVar = false)
    {
        int q = afterEnd;
        if (minus)
        {
            while (q < _src.Length && IsPySpace(_src[q])) q++;
        }
        else if (!plus && !isVar && trimBlocks && q < _src.Length && _src[q] == '\n') q++;
        return q;
    }

    /// <summary>{% raw %}...{% endraw %}: everything in between is data.</summary>
    private bool TryRaw(int tag, int p)
    {
        int q = p;
        while (q < _src.Length && IsPySpace(_src[q])) q++;
        if (string.CompareOrdinal(_src, q, "raw", 0, 3) != 0) return false;
        q += 3;
        while (q < _src.Length && IsPySpace(_src[q])) q++;
        bool minus = false;
        if (q < _src.Length && (_src[q] == '-' || _src[q] == '+')) { minus = _src[q] == '-'; q++; }
        if (string.CompareOrdinal(_src, q, "%}", 0, 2) != 0) return false;
        int bodyStart = AfterTagEnd(q + 2, minus, false);
        // find {%[-+]? endraw [-+]?%}
        for (int i = bodyStart; i + 1 < _src.Length; i++)
        {
            if (_src[i] != '{' || _src[i + 1] != '%') continue;
            int k = i + 2;
            char sign = k < _src.Length && (_src[k] == '-' || _src[k] == '+') ? _src[k] : '\0';
            if (sign != '\0') k++;
            while (k < _src.Length && IsPySpace(_src[k])) k++;
            if (string.CompareOrdinal(_src, k, "endraw", 0, 6) != 0) continue;
            k += 6;
            while (k < _src.Length && IsPySpace(_src[k])) k++;
            bool endMinus = false, endPlus = false;
            if (k < _src.Length && (_src[k] == '-' || _src[k] == '+')) { endMinus = _src[k] == '-'; endPlus = _src[k] == '+'; k++; }
            if (string.CompareOrdinal(_src, k, "%}", 0, 2) != 0) continue;
            string body = _src[bodyStart..i];
            if (sign == '-') body = body.TrimEnd();
            if (body.Length > 0) Emit(TokenKind.Data, body, bodyStart);
            _pos = AfterTagEnd(k + 2, endMinus, endPlus);
            return true;
        }
        throw Error(tag, "missing end of raw directive ('{% endraw %}')");
    }

    private void LexInside(int p, bool isBlock)
    {
        int depth = 0;
        int start = p;
        while (true)
        {
            while (p < _src.Length && IsPySpace(_src[p])) p++;
            if (p >= _src.Length)
                throw Error(start - 2, isBlock ? "unexpected end of template, expected '%}'" : "unexpected end of template, expected '}}'");
            if (depth == 0)
            {
                string end = isBlock ? "%}" : "}}";
                if (string.CompareOrdinal(_src, p, end, 0, 2) == 0)
                {
                    Emit(isBlock ? TokenKind.BlockEnd : TokenKind.VarEnd, end, p);
                    _pos = AfterTagEnd(p + 2, false, false, !isBlock);
                    return;
                }
                if ((_src[p] == '-' || (_src[p] == '+' && isBlock)) && string.CompareOrdinal(_src, p + 1, end, 0, 2) == 0)
                {
                    Emit(isBlock ? TokenKind.BlockEnd : TokenKind.VarEnd, end, p);
                    _pos = AfterTagEnd(p + 3, _src[p] == '-', _src[p] == '+', !isBlock);
                    return;
                }
            }
            char c = _src[p];
            if (char.IsLetter(c) || c == '_')
            {
                int s = p;
                while (p < _src.Length && (char.IsLetterOrDigit(_src[p]) || _src[p] == '_')) p++;
                Emit(TokenKind.Name, _src[s..p], s);
            }
            else if (char.IsAsciiDigit(c))
            {
                p = LexNumber(p);
            }
            else if (c == '\'' || c == '"')
            {
                p = LexString(p);
            }
            else
            {
                string op = MatchOperator(p) ?? throw Error(p, $"unexpected character '{c}'");
                if (op is "(" or "[" or "{") depth++;
                else if (op is ")" or "]" or "}")
                {
                    if (depth == 0) throw Error(p, $"unexpected '{op}'");
                    depth--;
                }
                Emit(TokenKind.Operator, op, p);
                p += op.Length;
            }
        }
    }

    private static readonly string[] Operators =
        ["//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"];

    private string? MatchOperator(int p)
    {
        foreach (string op in Operators)
            if (string.CompareOrdinal(_src, p, op, 0, op.Length) == 0) return op;
        return null;
    }

    private int LexNumber(int p)
    {
        int s = p;
        while (p < _src.Length && (char.IsAsciiDigit(_src[p]) || (_src[p] == '_' && p + 1 < _src.Length && char.IsAsciiDigit(_src[p + 1])))) p++;
        bool isFloat = false;
        // A number right after '.' is an attribute index (foo.0.1), never a float (Jinja's (?<!\.) rule).
        bool afterDot = s > 0 && _src[s - 1] == '.';
        if (!afterDot && p + 1 < _src.Length && _src[p] == '.' && char.IsAsciiDigit(_src[p + 1]))
        {
            isFloat = true;
            p++;
            while (p < _src.Length && (char.IsAsciiDigit(_src[p]) || (_src[p] == '_' && p + 1 < _src.Length && char.IsAsciiDigit(_src[p + 1])))) p++;
        }
        if (!afterDot && p < _src.Length && (_src[p] == 'e' || _src[p] == 'E'))
        {
            int q = p + 1;
            if (q < _src.Length && (_src[q] == '+' || _src[q] == '-')) q++;
            if (q < _src.Length && char.IsAsciiDigit(_src[q]))
            {
                isFloat = true;
                p = q;
                while (p < _src.Length && char.IsAsciiDigit(_src[p])) p++;
            }
        }
        string text = _src[s..p].Replace("_", "");
        if (isFloat)
            Emit(TokenKind.Float, text, s, double.Parse(text, NumberStyles.Float, CultureInfo.InvariantCulture));
        else if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long l))
            Emit(TokenKind.Integer, text, s, l);
        else
            throw Error(s, $"integer literal too large: {text}");
        return p;
    }

    /// <summary>String literal with Python 'unicode-escape' decoding (unknown escapes stay as written).</summary>
    private int LexString(int p)
    {
        char quote = _src[p];
        int s = p++;
        var sb = new StringBuilder();
        while (true)
        {
            if (p >= _src.Length) throw Error(s, "unterminated string literal");
            char c = _src[p];
            if (c == quote) { p++; break; }
            if (c != '\\') { sb.Append(c); p++; continue; }
            if (p + 1 >= _src.Length) throw Error(s, "unterminated string literal");
            char e = _src[p + 1];
            p += 2;
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case '\n': break; // line continuation
                case 'x': p = AppendHex(sb, p, 2, s); break;
                case 'u': p = AppendHex(sb, p, 4, s); break;
                case 'U': p = AppendHex(sb, p, 8, s); break;
                case >= '0' and <= '7':
                {
                    int v = e - '0', n = 1;
                    while (n < 3 && p < _src.Length && _src[p] >= '0' && _src[p] <= '7') { v = v * 8 + (_src[p] - '0'); p++; n++; }
                    sb.Append((char)v);
                    break;
                }
                default: sb.Append('\\').Append(e); break;
            }
        }
        Emit(TokenKind.String, _src[s..p], s, sb.ToString());
        return p;
    }

    private int AppendHex(StringBuilder sb, int p, int n, int stringStart)
    {
        if (p + n > _src.Length || !int.TryParse(_src.AsSpan(p, n), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int cp))
            throw Error(stringStart, "truncated \\x, \\u or \\U escape in string literal");
        sb.Append(char.ConvertFromUtf32(cp));
        return p + n;
    }
}

namespace Actors.Engine.Chat.Jinja;

/// <summary>Recursive-descent parser for the Jinja2 subset; operator precedence follows jinja2.parser.</summary>
internal sealed class Parser
{
    private readonly Lexer _lexer;
    private readonly List<Token> _tokens;
    private int _i;

    public Parser(Lexer lexer)
    {
        _lexer = lexer;
        _tokens = lexer.Tokenize();
    }

    private Token Cur => _tokens[_i];
    private Token Peek(int k = 1) => _tokens[Math.Min(_i + k, _tokens.Count - 1)];
    private int Line(Token t) => Lexer.LineCol(_lexer.Text, t.Offset).Line;

    private ChatTemplateSyntaxException Error(Token t, string problem) => _lexer.Error(t.Offset, problem);

    private static string Describe(Token t) => t.Kind switch
    {
        TokenKind.Eof => "end of template",
        TokenKind.BlockEnd => "end of statement block",
        TokenKind.VarEnd => "end of print statement",
        TokenKind.Data => "template data",
        _ => $"'{t.Text}'",
    };

    private bool IsOp(string op) => Cur.Kind == TokenKind.Operator && Cur.Text == op;
    private bool IsName(string name) => Cur.Kind == TokenKind.Name && Cur.Text == name;

    private Token Expect(TokenKind kind, string? text = null)
    {
        var t = Cur;
        if (t.Kind != kind || (text is not null && t.Text != text))
        {
            string want = text is not null ? $"'{text}'" : kind switch
            {
                TokenKind.Name => "a name",
                TokenKind.BlockEnd => "'%}'",
                TokenKind.VarEnd => "'}}'",
                _ => kind.ToString(),
            };
            throw Error(t, $"expected {want}, got {Describe(t)}");
        }
        _i++;
        return t;
    }

    private void ExpectOp(string op) => Expect(TokenKind.Operator, op);

    public List<Stmt> ParseTemplate()
    {
        var body = ParseBody([], out _);
        return body;
    }

    /// <summary>Parses statements until a block tag whose keyword is in endTags (consumes '{%' and the keyword).</summary>
    private List<Stmt> ParseBody(string[] endTags, out string endTag)
    {
        var body = new List<Stmt>();
        while (true)
        {
            var t = Cur;
            switch (t.Kind)
            {
                case TokenKind.Eof:
                    if (endTags.Length > 0)
                        throw Error(t, $"unexpected end of template; expected {string.Join(" or ", endTags.Select(e => "'" + e + "'"))}");
                    endTag = "";
                    return body;
                case TokenKind.Data:
                    _i++;
                    body.Add(new TextStmt(Line(t), t.Text));
                    break;
                case TokenKind.VarBegin:
                {
                    _i++;
                    var e = ParseTuple();
                    Expect(TokenKind.VarEnd);
                    body.Add(new PrintStmt(Line(t), e));
                    break;
                }
                case TokenKind.BlockBegin:
                {
                    _i++;
                    var kw = Cur;
                    if (kw.Kind != TokenKind.Name) throw Error(kw, $"expected a statement keyword, got {Describe(kw)}");
                    if (endTags.Contains(kw.Text))
                    {
                        _i++;
                        endTag = kw.Text;
                        return body;
                    }
                    body.Add(ParseStatement(kw));
                    break;
                }
                default:
                    throw Error(t, $"unexpected {Describe(t)}");
            }
        }
    }

    private Stmt ParseStatement(Token kw)
    {
        int line = Line(kw);
        _i++;
        switch (kw.Text)
        {
            case "if": return ParseIf(line);
            case "for": return ParseFor(line);
            case "set": return ParseSet(line);
            case "macro": return ParseMacro(line);
            case "break": Expect(TokenKind.BlockEnd); return new BreakStmt(line);
            case "continue": Expect(TokenKind.BlockEnd); return new ContinueStmt(line);
            case "do":
            {
                var e = ParseTuple();
                Expect(TokenKind.BlockEnd);
                return new ExprStmt(line, e);
            }
            case "call":
            {
                // {% call(args) macro(...) %}body{% endcall %}: the body becomes the macro's caller().
                var ps = IsOp("(") ? ParseParams() : [];
                var callTok = Cur;
                var e = ParseExpression();
                if (e is not CallExpr call) throw Error(callTok, "expected a call after 'call'");
                Expect(TokenKind.BlockEnd);
                var body = ParseBody(["endcall"], out _);
                Expect(TokenKind.BlockEnd);
                return new CallBlockStmt(line, ps, call, body);
            }
            case "with":
            {
                // {% with a = 1, b = 2 %}...{% endwith %}: a scope with its own assignments.
                var sets = new List<Stmt>();
                while (Cur.Kind != TokenKind.BlockEnd)
                {
                    if (sets.Count > 0) ExpectOp(",");
                    var target = ParseAssignName(false);
                    ExpectOp("=");
                    sets.Add(new SetStmt(line, target, ParseExpression()));
                }
                Expect(TokenKind.BlockEnd);
                var body = ParseBody(["endwith"], out _);
                Expect(TokenKind.BlockEnd);
                sets.AddRange(body);
                return new ScopeStmt(line, sets);
            }
            case "filter":
            {
                var f = ParseFilterCall(null, line);
                Expect(TokenKind.BlockEnd);
                var body = ParseBody(["endfilter"], out _);
                Expect(TokenKind.BlockEnd);
                return new FilterBlockStmt(line, f, body);
            }
            case "generation":
            {
                // transformers' AssistantTracker extension: {% generation %}...{% endgeneration %} only marks spans.
                Expect(TokenKind.BlockEnd);
                var body = ParseBody(["endgeneration"], out _);
                Expect(TokenKind.BlockEnd);
                return new ScopeStmt(line, body);
            }
            default:
                throw Error(kw, $"unknown or unsupported statement '{kw.Text}'");
        }
    }

    private Stmt ParseIf(int line)
    {
        var branches = new List<(Expr, List<Stmt>)>();
        List<Stmt>? elseBody = null;
        var test = ParseTuple(withCondExpr: true);
        Expect(TokenKind.BlockEnd);
        while (true)
        {
            var body = ParseBody(["elif", "else", "endif"], out string end);
            branches.Add((test, body));
            if (end == "elif")
            {
                test = ParseTuple();
                Expect(TokenKind.BlockEnd);
                continue;
            }
            if (end == "else")
            {
                Expect(TokenKind.BlockEnd);
                elseBody = ParseBody(["endif"], out _);
            }
            Expect(TokenKind.BlockEnd);
            return new IfStmt(line, branches, elseBody);
        }
    }

    private Stmt ParseFor(int line)
    {
        var target = ParseAssignTarget(allowNamespace: false);
        Expect(TokenKind.Name, "in");
        var iter = ParseTuple(withCondExpr: false);
        Expr? filter = null;
        if (IsName("if"))
        {
            _i++;
            filter = ParseExpression();
        }
        if (IsName("recursive")) throw Error(Cur, "recursive for loops are not supported");
        Expect(TokenKind.BlockEnd);
        var body = ParseBody(["endfor", "else"], out string end);
        List<Stmt>? elseBody = null;
        if (end == "else")
        {
            Expect(TokenKind.BlockEnd);
            elseBody = ParseBody(["endfor"], out _);
        }
        Expect(TokenKind.BlockEnd);
        return new ForStmt(line, target, iter, filter, body, elseBody);
    }

    private Stmt ParseSet(int line)
    {
        var target = ParseAssignTarget(allowNamespace: true);
        if (IsOp("="))
        {
            _i++;
            var value = ParseTuple();
            Expect(TokenKind.BlockEnd);
            return new SetStmt(line, target, value);
        }
        Expect(TokenKind.BlockEnd);
        var body = ParseBody(["endset"], out _);
        Expect(TokenKind.BlockEnd);
        return new SetBlockStmt(line, target, body);
    }

    private Stmt ParseMacro(int line)
    {
        string name = Expect(TokenKind.Name).Text;
        var ps = ParseParams();
        Expect(TokenKind.BlockEnd);
        var body = ParseBody(["endmacro"], out _);
        if (Cur.Kind == TokenKind.Name && Cur.Text == name) _i++;
        Expect(TokenKind.BlockEnd);
        return new MacroStmt(line, name, ps, body);
    }

    private List<(string, Expr?)> ParseParams()
    {
        ExpectOp("(");
        var ps = new List<(string, Expr?)>();
        while (!IsOp(")"))
        {
            if (ps.Count > 0) ExpectOp(",");
            if (IsOp(")")) break;
            string p = Expect(TokenKind.Name).Text;
            Expr? def = null;
            if (IsOp("=")) { _i++; def = ParseExpression(); }
            ps.Add((p, def));
        }
        ExpectOp(")");
        return ps;
    }

    private Expr ParseAssignTarget(bool allowNamespace)
    {
        var first = ParseAssignName(allowNamespace);
        if (!IsOp(",")) return first;
        var items = new List<Expr> { first };
        while (IsOp(","))
        {
            _i++;
            if (Cur.Kind != TokenKind.Name) break;
            items.Add(ParseAssignName(false));
        }
        return new TupleExpr(first.Line, items);
    }

    private Expr ParseAssignName(bool allowNamespace)
    {
        if (IsOp("("))
        {
            _i++;
            var inner = ParseAssignTarget(false);
            ExpectOp(")");
            return inner;
        }
        var t = Expect(TokenKind.Name);
        if (allowNamespace && IsOp(".") && Peek().Kind == TokenKind.Name)
        {
            _i++;
            string attr = Expect(TokenKind.Name).Text;
            return new GetAttrExpr(Line(t), new NameExpr(Line(t), t.Text), attr);
        }
        if (t.Text is "true" or "false" or "none" or "True" or "False" or "None")
            throw Error(t, $"cannot assign to '{t.Text}'");
        return new NameExpr(Line(t), t.Text);
    }

    // ---- expressions -------------------------------------------------------------------------

    /// <summary>Expression or bare tuple "a, b" (jinja2 parse_tuple).</summary>
    private Expr ParseTuple(bool withCondExpr = true)
    {
        int line = Line(Cur);
        var first = withCondExpr ? ParseExpression() : ParseOr();
        if (!IsOp(",")) return first;
        var items = new List<Expr> { first };
        while (IsOp(","))
        {
            _i++;
            if (Cur.Kind is TokenKind.BlockEnd or TokenKind.VarEnd || IsOp(")") || IsName("in") || IsName("if")) break;
            items.Add(withCondExpr ? ParseExpression() : ParseOr());
        }
        return new TupleExpr(line, items);
    }

    private Expr ParseExpression()
    {
        var e = ParseOr();
        while (IsName("if"))
        {
            int line = Line(Cur);
            _i++;
            var test = ParseOr();
            Expr? elseE = null;
            if (IsName("else"))
            {
                _i++;
                elseE = ParseExpression();
            }
            e = new CondExpr(line, test, e, elseE);
        }
        return e;
    }

    private Expr ParseOr()
    {
        var l = ParseAnd();
        while (IsName("or"))
        {
            int line = Line(Cur);
            _i++;
            l = new BinaryExpr(line, "or", l, ParseAnd());
        }
        return l;
    }

    private Expr ParseAnd()
    {
        var l = ParseNot();
        while (IsName("and"))
        {
            int line = Line(Cur);
            _i++;
            l = new BinaryExpr(line, "and", l, ParseNot());
        }
        return l;
    }

    private Expr ParseNot()
    {
        if (IsName("not"))
        {
            int line = Line(Cur);
            _i++;
            return new UnaryExpr(line, "not", ParseNot());
        }
        return ParseCompare();
    }

    private static readonly HashSet<string> CompareOps = ["==", "!=", "<", ">", "<=", ">="];

    private Expr ParseCompare()
    {
        int line = Line(Cur);
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Cur.Kind == TokenKind.Operator && CompareOps.Contains(Cur.Text))
            {
                string op = Cur.Text;
                _i++;
                rest.Add((op, ParseMath1()));
            }
            else if (IsName("in"))
            {
                _i++;
                rest.Add(("in", ParseMath1()));
            }
            else if (IsName("not") && Peek().Kind == TokenKind.Name && Peek().Text == "in")
            {
                _i += 2;
                rest.Add(("notin", ParseMath1()));
            }
            else break;
        }
        return rest.Count == 0 ? first : new CompareExpr(line, first, rest);
    }

    private Expr ParseMath1()
    {
        var l = ParseConcat();
        while (IsOp("+") || IsOp("-"))
        {
            var t = Cur;
            _i++;
            l = new BinaryExpr(Line(t), t.Text, l, ParseConcat());
        }
        return l;
    }

    private Expr ParseConcat()
    {
        var l = ParseMath2();
        while (IsOp("~"))
        {
            var t = Cur;
            _i++;
            l = new BinaryExpr(Line(t), "~", l, ParseMath2());
        }
        return l;
    }

    private Expr ParseMath2()
    {
        var l = ParsePow();
        while (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%"))
        {
            var t = Cur;
            _i++;
            l = new BinaryExpr(Line(t), t.Text, l, ParsePow());
        }
        return l;
    }

    private Expr ParsePow()
    {
        var l = ParseUnary(true);
        while (IsOp("**"))
        {
            var t = Cur;
            _i++;
            l = new BinaryExpr(Line(t), "**", l, ParseUnary(true));
        }
        return l;
    }

    private Expr ParseUnary(bool withFilter)
    {
        Expr node;
        if (IsOp("-") || IsOp("+"))
        {
            var t = Cur;
            _i++;
            node = new UnaryExpr(Line(t), t.Text, ParseUnary(false));
        }
        else node = ParsePrimary();
        node = ParsePostfix(node);
        if (withFilter) node = ParseFilterExpr(node);
        return node;
    }

    private Expr ParsePrimary()
    {
        var t = Cur;
        int line = Line(t);
        switch (t.Kind)
        {
            case TokenKind.Name:
                _i++;
                return t.Text switch
                {
                    "true" or "True" => new ConstExpr(line, true),
                    "false" or "False" => new ConstExpr(line, false),
                    "none" or "None" => new ConstExpr(line, null),
                    _ => new NameExpr(line, t.Text),
                };
            case TokenKind.String:
            {
                // Adjacent string literals concatenate, as in Python.
                string s = (string)t.Value!;
                _i++;
                while (Cur.Kind == TokenKind.String) { s += (string)Cur.Value!; _i++; }
                return new ConstExpr(line, s);
            }
            case TokenKind.Integer:
            case TokenKind.Float:
                _i++;
                return new ConstExpr(line, t.Value);
            case TokenKind.Operator when t.Text == "(":
            {
                _i++;
                if (IsOp(")")) { _i++; return new TupleExpr(line, []); }
                var first = ParseExpression();
                if (IsOp(")")) { _i++; return first; }
                var items = new List<Expr> { first };
                while (IsOp(","))
                {
                    _i++;
                    if (IsOp(")")) break;
                    items.Add(ParseExpression());
                }
                ExpectOp(")");
                return new TupleExpr(line, items);
            }
            case TokenKind.Operator when t.Text == "[":
            {
                _i++;
                var items = new List<Expr>();
                while (!IsOp("]"))
                {
                    if (items.Count > 0) ExpectOp(",");
                    if (IsOp("]")) break;
                    items.Add(ParseExpression());
                }
                ExpectOp("]");
                return new ListExpr(line, items);
            }
            case TokenKind.Operator when t.Text == "{":
            {
                _i++;
                var items = new List<(Expr, Expr)>();
                while (!IsOp("}"))
                {
                    if (items.Count > 0) ExpectOp(",");
                    if (IsOp("}")) break;
                    var k = ParseExpression();
                    ExpectOp(":");
                    items.Add((k, ParseExpression()));
                }
                ExpectOp("}");
                return new DictExpr(line, items);
            }
            default:
                throw Error(t, $"unexpected {Describe(t)}");
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            if (IsOp("."))
            {
                var dot = Cur;
                _i++;
                var t = Cur;
                if (t.Kind == TokenKind.Name) { _i++; node = new GetAttrExpr(Line(dot), node, t.Text); }
                else if (t.Kind == TokenKind.Integer) { _i++; node = new GetItemExpr(Line(dot), node, new ConstExpr(Line(t), t.Value)); }
                else throw Error(t, $"expected an attribute name after '.', got {Describe(t)}");
            }
            else if (IsOp("["))
            {
                node = ParseSubscript(node);
            }
            else if (IsOp("("))
            {
                node = ParseCall(node);
            }
            else return node;
        }
    }

    private Expr ParseSubscript(Expr node)
    {
        int line = Line(Cur);
        ExpectOp("[");
        Expr? start = null, stop = null, step = null;
        bool isSlice = false;
        if (!IsOp(":")) start = ParseExpression();
        if (IsOp(":"))
        {
            isSlice = true;
            _i++;
            if (!IsOp("]") && !IsOp(":")) stop = ParseExpression();
            if (IsOp(":"))
            {
                _i++;
                if (!IsOp("]")) step = ParseExpression();
            }
        }
        else if (IsOp(","))
        {
            throw Error(Cur, "tuple subscripts are not supported");
        }
        ExpectOp("]");
        return isSlice ? new SliceExpr(line, node, start, stop, step) : new GetItemExpr(line, node, start!);
    }

    private (List<Expr> Args, List<(string, Expr)> Kwargs) ParseArgs()
    {
        ExpectOp("(");
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!IsOp(")"))
        {
            if (args.Count + kwargs.Count > 0) ExpectOp(",");
            if (IsOp(")")) break;
            if (Cur.Kind == TokenKind.Name && Peek().Kind == TokenKind.Operator && Peek().Text == "=")
            {
                string k = Cur.Text;
                _i += 2;
                kwargs.Add((k, ParseExpression()));
            }
            else
            {
                if (kwargs.Count > 0) throw Error(Cur, "positional argument after keyword argument");
                args.Add(ParseExpression());
            }
        }
        ExpectOp(")");
        return (args, kwargs);
    }

    private Expr ParseCall(Expr callee)
    {
        int line = Line(Cur);
        var (args, kwargs) = ParseArgs();
        return new CallExpr(line, callee, args, kwargs);
    }

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            if (IsOp("|"))
            {
                int line = Line(Cur);
                _i++;
                node = ParseFilterCall(node, line);
            }
            else if (IsName("is"))
            {
                node = ParseTest(node);
            }
            else if (IsOp("("))
            {
                node = ParseCall(node);
            }
            else return node;
        }
    }

    private FilterExpr ParseFilterCall(Expr? operand, int line)
    {
        string name = Expect(TokenKind.Name).Text;
        while (IsOp(".")) { _i++; name += "." + Expect(TokenKind.Name).Text; }
        List<Expr> args = [];
        List<(string, Expr)> kwargs = [];
        if (IsOp("(")) (args, kwargs) = ParseArgs();
        return new FilterExpr(line, operand, name, args, kwargs);
    }

    private Expr ParseTest(Expr node)
    {
        int line = Line(Cur);
        Expect(TokenKind.Name, "is");
        bool negated = false;
        if (IsName("not")) { _i++; negated = true; }
        string name = Expect(TokenKind.Name).Text;
        while (IsOp(".")) { _i++; name += "." + Expect(TokenKind.Name).Text; }
        var args = new List<Expr>();
        if (IsOp("("))
        {
            var (a, kw) = ParseArgs();
            if (kw.Count > 0) throw Error(Cur, "keyword arguments to tests are not supported");
            args = a;
        }
        else if ((Cur.Kind is TokenKind.Name or TokenKind.String or TokenKind.Integer or TokenKind.Float || IsOp("[") || IsOp("{"))
                 && !(Cur.Kind == TokenKind.Name && Cur.Text is "else" or "or" or "and" or "if" or "in" or "not" or "is"))
        {
            // "x is divisibleby 3", "x is sameas none": one bare argument.
            var arg = ParsePrimary();
            args.Add(ParsePostfix(arg));
        }
        return new TestExpr(line, node, name, args, negated);
    }
}

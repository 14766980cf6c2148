using System.Text;

namespace Actors.Engine.Chat.Jinja;

/// <summary>A variable frame. Jinja2 gives each for-loop iteration and each macro call a fresh frame;
/// 'if' does not open one. Lookups fall through to the parent (globals at the root).</summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _vars = new(StringComparer.Ordinal);

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s is not null; s = s.Parent)
            if (s._vars.TryGetValue(name, out value)) return true;
        value = null;
        return false;
    }

    public Scope? Parent { get; } = parent;

    public void Set(string name, object? value) => _vars[name] = value;
}

/// <summary>The <c>loop</c> variable of a for loop.</summary>
internal sealed class LoopContext(IReadOnlyList<object?> items)
{
    public int Index0 { get; set; }
    public IReadOnlyList<object?> Items { get; } = items;
    public int Length => Items.Count;

    public object? Attr(string name) => name switch
    {
        "index" => (long)(Index0 + 1),
        "index0" => (long)Index0,
        "revindex" => (long)(Length - Index0),
        "revindex0" => (long)(Length - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == Length - 1,
        "length" => (long)Length,
        "depth" => 1L,
        "depth0" => 0L,
        "previtem" => Index0 > 0 ? Items[Index0 - 1] : new Undefined("there is no previous item"),
        "nextitem" => Index0 + 1 < Length ? Items[Index0 + 1] : new Undefined("there is no next item"),
        "cycle" => new PyCallable("loop.cycle", (args, _) =>
            args.Count == 0 ? throw new JinjaRuntimeException("no items for cycling given") : args[Index0 % args.Count]),
        _ => new Undefined($"'LoopContext' object has no attribute '{name}'"),
    };
}

internal enum Flow { Normal, Break, Continue }

/// <summary>Tree-walking evaluator with Python/Jinja2 semantics.</summary>
internal sealed class Interpreter(string sourceName)
{
    private int _line;

    public string Render(List<Stmt> template, Scope globals)
    {
        var sb = new StringBuilder();
        var scope = new Scope(globals);
        try
        {
            Exec(template, scope, sb);
        }
        catch (JinjaRuntimeException e)
        {
            throw new ChatTemplateException($"{sourceName}:{_line}: {e.Message}", e);
        }
        return sb.ToString();
    }

    private Flow Exec(List<Stmt> body, Scope scope, StringBuilder sb)
    {
        foreach (var stmt in body)
        {
            var flow = Exec(stmt, scope, sb);
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    private Flow Exec(Stmt stmt, Scope scope, StringBuilder sb)
    {
        _line = stmt.Line;
        switch (stmt)
        {
            case TextStmt t:
                sb.Append(t.Text);
                return Flow.Normal;
            case PrintStmt p:
                sb.Append(Py.Str(Eval(p.Value, scope)));
                return Flow.Normal;
            case IfStmt i:
                foreach (var (test, branch) in i.Branches)
                {
                    _line = test.Line;
                    if (Py.IsTrue(Eval(test, scope))) return Exec(branch, scope, sb);
                }
                return i.Else is null ? Flow.Normal : Exec(i.Else, scope, sb);
            case ForStmt f:
                ExecFor(f, scope, sb);
                return Flow.Normal;
            case SetStmt s:
                Assign(s.Target, Eval(s.Value, scope), scope);
                return Flow.Normal;
            case SetBlockStmt sbk:
            {
                var inner = new StringBuilder();
                Exec(sbk.Body, scope, inner);
                Assign(sbk.Target, inner.ToString(), scope);
                return Flow.Normal;
            }
            case MacroStmt m:
                scope.Set(m.Name, MakeMacro(m, scope));
                return Flow.Normal;
            case FilterBlockStmt fb:
            {
                var inner = new StringBuilder();
                Exec(fb.Body, scope, inner);
                sb.Append(Py.Str(ApplyFilter(fb.Filter, inner.ToString(), scope)));
                return Flow.Normal;
            }
            case ScopeStmt sc:
                // Rendered through a caller() in transformers, so assignments inside stay inside.
                Exec(sc.Body, new Scope(scope), sb);
                return Flow.Normal;
            case CallBlockStmt cb:
            {
                var caller = MakeMacro(new MacroStmt(cb.Line, "caller", cb.CallerParams, cb.Body), scope);
                var callee = Eval(cb.Call.Callee, scope);
                var args = cb.Call.Args.Select(a => Eval(a, scope)).ToList();
                var kwargs = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, a) in cb.Call.Kwargs) kwargs[k] = Eval(a, scope);
                kwargs["caller"] = caller;
                if (callee is not PyCallable fn) throw new JinjaRuntimeException($"'{Py.TypeName(callee)}' object is not callable");
                sb.Append(Py.Str(fn.Invoke(args, kwargs)));
                return Flow.Normal;
            }
            case BreakStmt: return Flow.Break;
            case ContinueStmt: return Flow.Continue;
            case ExprStmt e:
                Eval(e.Value, scope);
                return Flow.Normal;
            default:
                throw new JinjaRuntimeException($"unsupported statement {stmt.GetType().Name}");
        }
    }

    private void ExecFor(ForStmt f, Scope scope, StringBuilder sb)
    {
        // An Undefined iterable yields nothing (Jinja2's Undefined.__iter__), hence no error here.
        var all = Py.Iterate(Eval(f.Iter, scope));
        IReadOnlyList<object?> items = all;
        if (f.Filter is not null)
        {
            var kept = new List<object?>();
            foreach (var item in all)
            {
                var fs = new Scope(scope);
                Assign(f.Target, item, fs);
                if (Py.IsTrue(Eval(f.Filter, fs))) kept.Add(item);
            }
            items = kept;
        }
        if (items.Count == 0)
        {
            if (f.Else is not null) Exec(f.Else, new Scope(scope), sb);
            return;
        }
        var loop = new LoopContext(items);
        for (int i = 0; i < items.Count; i++)
        {
            loop.Index0 = i;
            var iterScope = new Scope(scope);
            iterScope.Set("loop", loop);
            Assign(f.Target, items[i], iterScope);
            var flow = Exec(f.Body, iterScope, sb);
            if (flow == Flow.Break) break;
        }
    }

    private void Assign(Expr target, object? value, Scope scope)
    {
        switch (target)
        {
            case NameExpr n:
                scope.Set(n.Name, value);
                break;
            case TupleExpr t:
            {
                var seq = Py.Iterate(value);
                if (seq.Count != t.Items.Count)
                    throw new JinjaRuntimeException(seq.Count > t.Items.Count
                        ? $"too many values to unpack (expected {t.Items.Count})"
                        : $"not enough values to unpack (expected {t.Items.Count}, got {seq.Count})");
                for (int i = 0; i < seq.Count; i++) Assign(t.Items[i], seq[i], scope);
                break;
            }
            case GetAttrExpr { Obj: NameExpr nsName } ga:
            {
                scope.TryGet(nsName.Name, out var obj);
                if (obj is not Namespace ns) throw new JinjaRuntimeException("cannot assign attribute on non-namespace object");
                ns.Attributes[ga.Name] = value;
                break;
            }
            default:
                throw new JinjaRuntimeException("can't assign to this expression");
        }
    }

    private PyCallable MakeMacro(MacroStmt m, Scope defScope) => new(m.Name, (args, kwargs) =>
    {
        var ms = new Scope(defScope);
        for (int i = 0; i < m.Params.Count; i++)
        {
            var (name, def) = m.Params[i];
            if (i < args.Count) ms.Set(name, args[i]);
            else if (kwargs.TryGetValue(name, out var kv)) ms.Set(name, kv);
            else if (def is not null) ms.Set(name, Eval(def, defScope));
            else ms.Set(name, new Undefined($"parameter '{name}' was not provided"));
        }
        if (args.Count > m.Params.Count) throw new JinjaRuntimeException($"macro '{m.Name}' takes not more than {m.Params.Count} argument(s)");
        ms.Set("varargs", new List<object?>());
        if (kwargs.TryGetValue("caller", out var callerFn)) ms.Set("caller", callerFn);
        var kw = new PyDict();
        foreach (var (k, v) in kwargs) if (k != "caller" && !m.Params.Any(p => p.Name == k)) kw[k] = v;
        ms.Set("kwargs", kw);
        var sb = new StringBuilder();
        int saved = _line;
        Exec(m.Body, ms, sb);
        _line = saved;
        return sb.ToString();
    });

    public object? Eval(Expr e, Scope scope)
    {
        switch (e)
        {
            case ConstExpr c: return c.Value;
            case NameExpr n:
                return scope.TryGet(n.Name, out var v) ? v : new Undefined($"'{n.Name}' is undefined");
            case ListExpr l: return l.Items.Select(x => Eval(x, scope)).ToList();
            case TupleExpr t: return t.Items.Select(x => Eval(x, scope)).ToArray();
            case DictExpr d:
            {
                var dict = new PyDict();
                foreach (var (k, val) in d.Items)
                {
                    var key = Eval(k, scope);
                    if (key is null or Undefined or List<object?> or PyDict) throw new JinjaRuntimeException($"unhashable dict key of type '{Py.TypeName(key)}'");
                    dict[key] = Eval(val, scope);
                }
                return dict;
            }
            case GetAttrExpr ga: return Builtins.GetAttr(Eval(ga.Obj, scope), ga.Name);
            case GetItemExpr gi: return Builtins.GetItem(Eval(gi.Obj, scope), Eval(gi.Key, scope));
            case SliceExpr s:
                return Builtins.Slice(Eval(s.Obj, scope),
                    s.Start is null ? null : Eval(s.Start, scope),
                    s.Stop is null ? null : Eval(s.Stop, scope),
                    s.Step is null ? null : Eval(s.Step, scope));
            case CallExpr call:
            {
                var callee = Eval(call.Callee, scope);
                var args = call.Args.Select(a => Eval(a, scope)).ToList();
                var kwargs = new Dictionary<string, object?>(StringComparer.Ordinal);
                foreach (var (k, a) in call.Kwargs) kwargs[k] = Eval(a, scope);
                return callee switch
                {
                    PyCallable fn => fn.Invoke(args, kwargs),
                    Undefined u => throw u.Fail(),
                    _ => throw new JinjaRuntimeException($"'{Py.TypeName(callee)}' object is not callable"),
                };
            }
            case FilterExpr f: return ApplyFilter(f, Eval(f.Operand!, scope), scope);
            case TestExpr t:
            {
                var args = t.Args.Select(a => Eval(a, scope)).ToList();
                bool r = Builtins.Test(t.Name, Eval(t.Operand, scope), args);
                return t.Negated ? !r : r;
            }
            case UnaryExpr u:
            {
                var x = Eval(u.Operand, scope);
                return u.Op switch
                {
                    "not" => !Py.IsTrue(x),
                    "-" => Py.Neg(x),
                    _ => x is Undefined ud ? throw ud.Fail() : Py.IsNumber(x) ? x : throw new JinjaRuntimeException($"bad operand type for unary +: '{Py.TypeName(x)}'"),
                };
            }
            case BinaryExpr b:
            {
                var l = Eval(b.Left, scope);
                switch (b.Op)
                {
                    case "and": return Py.IsTrue(l) ? Eval(b.Right, scope) : l;
                    case "or": return Py.IsTrue(l) ? l : Eval(b.Right, scope);
                }
                var r = Eval(b.Right, scope);
                return b.Op switch
                {
                    "+" => Py.Add(l, r),
                    "-" => Py.Sub(l, r),
                    "*" => Py.Mul(l, r),
                    "/" => Py.TrueDiv(l, r),
                    "//" => Py.FloorDiv(l, r),
                    "%" => Py.Mod(l, r),
                    "**" => Py.Pow(l, r),
                    "~" => Py.Str(l) + Py.Str(r),
                    _ => throw new JinjaRuntimeException($"unknown operator {b.Op}"),
                };
            }
            case CompareExpr c:
            {
                var left = Eval(c.First, scope);
                foreach (var (op, re) in c.Rest)
                {
                    var right = Eval(re, scope);
                    bool ok = op switch
                    {
                        "==" => Py.Eq(left, right),
                        "!=" => !Py.Eq(left, right),
                        "<" => Py.Compare(left, right, op) < 0,
                        ">" => Py.Compare(left, right, op) > 0,
                        "<=" => Py.Compare(left, right, op) <= 0,
                        ">=" => Py.Compare(left, right, op) >= 0,
                        "in" => Py.Contains(right, left),
                        "notin" => !Py.Contains(right, left),
                        _ => throw new JinjaRuntimeException($"unknown comparison {op}"),
                    };
                    if (!ok) return false;
                    left = right;
                }
                return true;
            }
            case CondExpr ce:
                if (Py.IsTrue(Eval(ce.Test, scope))) return Eval(ce.Then, scope);
                return ce.Else is null ? new Undefined("the inline if-expression evaluated to false and no else section was defined.") : Eval(ce.Else, scope);
            default:
                throw new JinjaRuntimeException($"unsupported expression {e.GetType().Name}");
        }
    }

    private object? ApplyFilter(FilterExpr f, object? value, Scope scope)
    {
        var args = f.Args.Select(a => Eval(a, scope)).ToList();
        var kwargs = new Dictionary<string, object?>(StringComparer.Ordinal);
        foreach (var (k, a) in f.Kwargs) kwargs[k] = Eval(a, scope);
        return Builtins.Filter(f.Name, value, args, kwargs);
    }
}

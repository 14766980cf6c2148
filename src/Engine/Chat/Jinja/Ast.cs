namespace Actors.Engine.Chat.Jinja;

// Statements. Line is the 1-based source line of the tag, for run-time error messages.
internal abstract record Stmt(int Line);
internal sealed record TextStmt(int Line, string Text) : Stmt(Line);
internal sealed record PrintStmt(int Line, Expr Value) : Stmt(Line);
internal sealed record IfStmt(int Line, List<(Expr Test, List<Stmt> Body)> Branches, List<Stmt>? Else) : Stmt(Line);
internal sealed record ForStmt(int Line, Expr Target, Expr Iter, Expr? Filter, List<Stmt> Body, List<Stmt>? Else) : Stmt(Line);
internal sealed record SetStmt(int Line, Expr Target, Expr Value) : Stmt(Line);
internal sealed record SetBlockStmt(int Line, Expr Target, List<Stmt> Body) : Stmt(Line);
internal sealed record MacroStmt(int Line, string Name, List<(string Name, Expr? Default)> Params, List<Stmt> Body) : Stmt(Line);
internal sealed record CallBlockStmt(int Line, List<(string Name, Expr? Default)> CallerParams, CallExpr Call, List<Stmt> Body) : Stmt(Line);
internal sealed record FilterBlockStmt(int Line, FilterExpr Filter, List<Stmt> Body) : Stmt(Line);
internal sealed record ScopeStmt(int Line, List<Stmt> Body) : Stmt(Line);
internal sealed record BreakStmt(int Line) : Stmt(Line);
internal sealed record ContinueStmt(int Line) : Stmt(Line);
internal sealed record ExprStmt(int Line, Expr Value) : Stmt(Line);

// Expressions.
internal abstract record Expr(int Line);
internal sealed record ConstExpr(int Line, object? Value) : Expr(Line);
internal sealed record NameExpr(int Line, string Name) : Expr(Line);
internal sealed record ListExpr(int Line, List<Expr> Items) : Expr(Line);
internal sealed record TupleExpr(int Line, List<Expr> Items) : Expr(Line);
internal sealed record DictExpr(int Line, List<(Expr Key, Expr Value)> Items) : Expr(Line);
internal sealed record GetAttrExpr(int Line, Expr Obj, string Name) : Expr(Line);
internal sealed record GetItemExpr(int Line, Expr Obj, Expr Key) : Expr(Line);
internal sealed record SliceExpr(int Line, Expr Obj, Expr? Start, Expr? Stop, Expr? Step) : Expr(Line);
internal sealed record CallExpr(int Line, Expr Callee, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr(Line);
internal sealed record FilterExpr(int Line, Expr? Operand, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs) : Expr(Line);
internal sealed record TestExpr(int Line, Expr Operand, string Name, List<Expr> Args, bool Negated) : Expr(Line);
internal sealed record BinaryExpr(int Line, string Op, Expr Left, Expr Right) : Expr(Line);
internal sealed record UnaryExpr(int Line, string Op, Expr Operand) : Expr(Line);
internal sealed record CompareExpr(int Line, Expr First, List<(string Op, Expr Right)> Rest) : Expr(Line);
internal sealed record CondExpr(int Line, Expr Test, Expr Then, Expr? Else) : Expr(Line);

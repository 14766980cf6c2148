namespace Actors.Engine.Chat;

/// <summary>
/// A chat template failed while rendering: the template called <c>raise_exception(msg)</c> (then
/// <see cref="Exception.Message"/> is exactly <c>msg</c>, as transformers reports it), or it did something
/// Jinja2 rejects at run time (an attribute of an undefined value, adding a string to a number, ...).
/// </summary>
public class ChatTemplateException(string message, Exception? inner = null) : Exception(message, inner)
{
}

/// <summary>The template text is not valid Jinja2 (for the supported subset); names the source, line and column.</summary>
public sealed class ChatTemplateSyntaxException(string source, int line, int column, string problem)
    : ChatTemplateException($"{source}:{line}:{column}: {problem}")
{
    public string TemplateSource { get; } = source;
    public int Line { get; } = line;
    public int Column { get; } = column;
}

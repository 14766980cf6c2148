namespace Actors.Engine.Model;

/// <summary>A model, tokenizer or template file is malformed; the message names the file and the field or offset.</summary>
public sealed class ModelFormatException(string file, string field, string problem)
    : Exception($"{file}: {field}: {problem}")
{
    public string File { get; } = file;
    public string Field { get; } = field;
}

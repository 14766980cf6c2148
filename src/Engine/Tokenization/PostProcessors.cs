namespace Actors.Engine.Tokenization;

/// <summary>A tokenizers post-processor, reduced to what it does to the ids of a single sequence.</summary>
internal interface IPostProcessor
{
    List<int> Process(List<int> ids, bool addSpecialTokens);
}

/// <summary>ByteLevel as a post-processor only trims offsets; ids are unchanged.</summary>
internal sealed class IdentityPostProcessor : IPostProcessor
{
    public List<int> Process(List<int> ids, bool addSpecialTokens) => ids;
}

internal sealed class SequencePostProcessor(IReadOnlyList<IPostProcessor> processors) : IPostProcessor
{
    public List<int> Process(List<int> ids, bool addSpecialTokens)
    {
        foreach (var p in processors) ids = p.Process(ids, addSpecialTokens);
        return ids;
    }
}

/// <summary>
/// TemplateProcessing's "single" template: a list of special-token pieces (each expanding to the ids listed for it
/// in "special_tokens") and the sequence itself. Without add_special_tokens only the sequence remains.
/// </summary>
internal sealed class TemplatePostProcessor(IReadOnlyList<int[]?> single) : IPostProcessor
{
    // Each entry: the ids of a special-token piece, or null for the sequence.
    public List<int> Process(List<int> ids, bool addSpecialTokens)
    {
        var result = new List<int>(ids.Count + 4);
        foreach (var piece in single)
        {
            if (piece is null) result.AddRange(ids);
            else if (addSpecialTokens) result.AddRange(piece);
        }
        return result;
    }
}

/// <summary>BertProcessing / RobertaProcessing for a single sequence: [cls] sequence [sep].</summary>
internal sealed class ClsSepPostProcessor(int cls, int sep) : IPostProcessor
{
    public List<int> Process(List<int> ids, bool addSpecialTokens)
    {
        if (!addSpecialTokens) return ids;
        var result = new List<int>(ids.Count + 2) { cls };
        result.AddRange(ids);
        result.Add(sep);
        return result;
    }
}

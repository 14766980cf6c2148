namespace Actors.Client.HuggingFace;

/// <summary>A model on the Hugging Face hub: "hf:ORG/NAME" or "hf:ORG/NAME@REVISION" (revision defaults to main).</summary>
public sealed record HfModelRef(string Repo, string Revision)
{
    public const string Prefix = "hf:";

    public static bool IsHfRef(string modelRef) => modelRef.StartsWith(Prefix, StringComparison.Ordinal);

    /// <summary>Parses "hf:ORG/NAME[@REV]"; throws ArgumentException naming the ref when it is malformed.</summary>
    public static HfModelRef Parse(string modelRef)
    {
        if (!IsHfRef(modelRef)) throw new ArgumentException($"model '{modelRef}' does not start with '{Prefix}'");
        var body = modelRef[Prefix.Length..];
        var at = body.IndexOf('@');
        var repo = at < 0 ? body : body[..at];
        var revision = at < 0 ? "main" : body[(at + 1)..];
        var parts = repo.Split('/');
        if (parts.Length != 2 || parts.Any(p => p.Length == 0 || p is "." or ".." || p.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))))
            throw new ArgumentException($"model '{modelRef}' is not hf:ORG/NAME[@REVISION] (ORG and NAME: letters, digits, '-', '_', '.')");
        if (revision.Length == 0 || revision.Contains("..", StringComparison.Ordinal) || revision.Any(c => char.IsWhiteSpace(c) || c == '\\'))
            throw new ArgumentException($"model '{modelRef}' has an invalid revision '{revision}'");
        return new HfModelRef(repo, revision);
    }

    /// <summary>Cache folder name of the repo: models--ORG--NAME.</summary>
    public string CacheFolderName => "models--" + Repo.Replace("/", "--", StringComparison.Ordinal);

    public override string ToString() => $"{Prefix}{Repo}@{Revision}";
}

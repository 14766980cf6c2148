namespace Actors.Engine.Tokenization;

/// <summary>An entry of tokenizer.json's "added_tokens" with the id tokenizers gives it on load.</summary>
public sealed record AddedToken(int Id, string Content, bool Special, bool SingleWord, bool LStrip, bool RStrip, bool Normalized);

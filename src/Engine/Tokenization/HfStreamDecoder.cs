namespace Actors.Engine.Tokenization;

/// <summary>
/// tokenizers' DecodeStream: decodes a sliding window of ids and returns only the text past what the window's
/// prefix already produced. Text ending in U+FFFD (an incomplete UTF-8 sequence, from byte-level or byte-fallback
/// tokens) is held back until a later token completes it; decoding with the previous tokens as context keeps the
/// decoders' position-dependent rules (a stripped leading space, Metaspace's first token) right.
/// </summary>
internal sealed class HfStreamDecoder(HfTokenizer tokenizer, bool skipSpecialTokens) : IStreamDecoder
{
    private List<int> _ids = [];
    private string _prefix = "";
    private int _prefixIndex;

    public string Push(int token)
    {
        if (_prefix.Length == 0 && _ids.Count > 0)
        {
            string newPrefix = tokenizer.Decode(_ids, skipSpecialTokens);
            if (!newPrefix.EndsWith('\uFFFD'))
            {
                _prefix = newPrefix;
                _prefixIndex = _ids.Count;
            }
        }

        _ids.Add(token);
        string text = tokenizer.Decode(_ids, skipSpecialTokens);
        if (text.Length <= _prefix.Length || text.EndsWith('\uFFFD')) return "";
        if (!text.StartsWith(_prefix, StringComparison.Ordinal))
            throw new InvalidOperationException(
                $"{tokenizer.SourceName}: stream decoding of token {token} changed earlier text: expected a prefix '{_prefix}', got '{text}'");

        string newText = text[_prefix.Length..];
        int newPrefixIndex = _ids.Count - _prefixIndex;
        _ids = _ids.GetRange(_prefixIndex, _ids.Count - _prefixIndex);
        _prefix = tokenizer.Decode(_ids, skipSpecialTokens);
        _prefixIndex = newPrefixIndex;
        return newText;
    }

    public string Flush()
    {
        string text = tokenizer.Decode(_ids, skipSpecialTokens);
        string rest = text.Length > _prefix.Length && text.StartsWith(_prefix, StringComparison.Ordinal) ? text[_prefix.Length..] : "";
        _ids = [];
        _prefix = "";
        _prefixIndex = 0;
        return rest;
    }
}

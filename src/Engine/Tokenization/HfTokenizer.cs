using System.Text;

namespace Actors.Engine.Tokenization;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> tokenizer (BPE model: byte-level as in GPT-2 / Llama 3 / Qwen2, or
/// SentencePiece-style with byte fallback as in Llama 2 / Mistral) whose ids and text are those of the
/// <c>tokenizers</c> library: added tokens split out first, then normalizer, pre-tokenizer, BPE, post-processor;
/// decoding through the decoder chain. Immutable after loading and safe to use from many threads.
/// </summary>
public sealed class HfTokenizer
{
    private readonly INormalizer? _normalizer;
    private readonly IPreTokenizer? _preTokenizer;
    private readonly BpeModel _model;
    private readonly AddedVocabulary _added;
    private readonly IPostProcessor? _postProcessor;
    private readonly IDecoder? _decoder;

    internal HfTokenizer(string sourceName, INormalizer? normalizer, IPreTokenizer? preTokenizer, BpeModel model,
        AddedVocabulary added, IPostProcessor? postProcessor, IDecoder? decoder)
    {
        SourceName = sourceName;
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _model = model;
        _added = added;
        _postProcessor = postProcessor;
        _decoder = decoder;
        int extra = 0;
        foreach (var t in added.Tokens)
            if (model.TokenToId(t.Content) is null) extra++;
        VocabSize = model.VocabCount + extra;
    }

    /// <summary>File name (or the name given to <see cref="Parse"/>) used in error messages.</summary>
    public string SourceName { get; }

    /// <summary>
    /// Distinct tokens in the model's vocabulary and the added tokens together (tokenizers'
    /// get_vocab_size(with_added_tokens: true), Python's len(tokenizer)).
    /// </summary>
    public int VocabSize { get; }

    /// <summary>The added tokens ("added_tokens"), with the ids tokenizers assigns them.</summary>
    public IEnumerable<AddedToken> AddedTokens => _added.Tokens;

    /// <summary>Reads and parses a tokenizer.json file.</summary>
    /// <exception cref="Model.ModelFormatException">The file is malformed or uses an unsupported component.</exception>
    public static HfTokenizer Load(string tokenizerJsonPath)
    {
        string json;
        try
        {
            json = File.ReadAllText(tokenizerJsonPath, Encoding.UTF8);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new Model.ModelFormatException(tokenizerJsonPath, "(file)", $"cannot be read: {e.Message}");
        }
        return Parse(json, tokenizerJsonPath);
    }

    /// <summary>Parses tokenizer.json text; <paramref name="sourceName"/> names it in error messages.</summary>
    /// <exception cref="Model.ModelFormatException">The text is malformed or uses an unsupported component.</exception>
    public static HfTokenizer Parse(string json, string sourceName) => TokenizerJsonReader.Read(json, sourceName);

    /// <summary>
    /// Token ids of <paramref name="text"/>; with <paramref name="addSpecialTokens"/> the post-processor's template
    /// (e.g. a leading &lt;s&gt;) is applied. Unpaired UTF-16 surrogates, which UTF-8 cannot carry, are read as U+FFFD.
    /// </summary>
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(text);
        var pieces = _added.ExtractAndNormalize(ReplaceLoneSurrogates(text), _normalizer);
        if (_preTokenizer is not null) pieces = _preTokenizer.PreTokenize(pieces);
        var ids = new List<int>(text.Length / 3 + 4);
        foreach (var piece in pieces)
        {
            if (piece.Id is int id) ids.Add(id);
            else _model.Tokenize(piece.Text, ids);
        }
        return _postProcessor is null ? ids : _postProcessor.Process(ids, addSpecialTokens);
    }

    /// <summary>
    /// Text of <paramref name="ids"/> through the decoder chain. Ids that name no token are left out, as tokenizers
    /// does; with <paramref name="skipSpecialTokens"/> special added tokens are left out too.
    /// </summary>
    public string Decode(IReadOnlyList<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        var tokens = new List<string>(ids.Count);
        foreach (int id in ids)
        {
            string? token = _added.IdToToken(id) ?? _model.IdToToken(id);
            if (token is null) continue;
            if (skipSpecialTokens && _added.IsSpecialContent(token)) continue;
            tokens.Add(token);
        }
        return _decoder is null ? string.Join(" ", tokens) : string.Concat(_decoder.DecodeChain(tokens));
    }

    /// <summary>Id of a token string: added tokens first, then the model's vocabulary.</summary>
    public int? TokenToId(string token) => _added.TokenToId(token) ?? _model.TokenToId(token);

    /// <summary>Token string of an id: added tokens first, then the model's vocabulary.</summary>
    public string? IdToToken(int id) => _added.IdToToken(id) ?? _model.IdToToken(id);

    /// <summary>Whether <paramref name="id"/> is an added token marked special (skipped by skipSpecialTokens).</summary>
    public bool IsSpecial(int id) => _added.IdToToken(id) is string content && _added.IsSpecialContent(content);

    /// <summary>An incremental decoder (tokenizers' DecodeStream) for streaming generated tokens as text.</summary>
    public IStreamDecoder CreateStreamDecoder(bool skipSpecialTokens = true) => new HfStreamDecoder(this, skipSpecialTokens);

    private static string ReplaceLoneSurrogates(string text)
    {
        if (!CodePointRegex.HasSurrogate(text)) return text;
        StringBuilder? sb = null;
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            bool paired = char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]);
            if (paired)
            {
                sb?.Append(c).Append(text[i + 1]);
                i++;
                continue;
            }
            if (char.IsSurrogate(c))
            {
                sb ??= new StringBuilder(text, 0, i, text.Length);
                sb.Append('\uFFFD');
            }
            else sb?.Append(c);
        }
        return sb?.ToString() ?? text;
    }
}

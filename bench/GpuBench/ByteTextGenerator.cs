using System.Runtime.CompilerServices;
using System.Text;
using Actors.Engine;
using Actors.Engine.Chat;
using Actors.Engine.Runtime;
using Actors.Engine.Sampling;

/// <summary>
/// The random-weight engine seen as a text model, so the grains can drive it: one token per UTF-8 byte
/// (id = ByteBase + byte), role tags as special ids, and no stop token, so every answer runs to MaxNewTokens (random
/// weights never mean to stop; a benchmark wants a known amount of decode). Text the model writes back is the bytes of
/// the byte ids it happened to pick; other ids are skipped.
/// </summary>
internal sealed class ByteTextGenerator(InferenceEngine engine, int contextLength) : ITextGenerator
{
    public const int ByteBase = 1000;
    public const int Bos = 900, SystemTag = 901, UserTag = 902, AssistantTag = 903, EndTag = 904;
    private static readonly IReadOnlySet<int> NoStop = new HashSet<int>();

    public InferenceEngine Engine { get; } = engine;
    public string ModelId => Engine.ModelId;
    public int ContextLength { get; } = contextLength;
    public IKvTiers? KvTiers => Engine;

    public IReadOnlyList<int> Encode(string text) => Encoding.UTF8.GetBytes(text).Select(b => ByteBase + b).ToArray();

    public string Decode(IReadOnlyList<int> tokens) =>
        Encoding.UTF8.GetString(tokens.Where(IsByte).Select(t => (byte)(t - ByteBase)).ToArray());

    public IReadOnlyList<int> EncodeChat(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        var ids = new List<int> { Bos };
        foreach (var m in messages)
        {
            ids.Add(m.Role switch
            {
                "system" => SystemTag,
                "user" => UserTag,
                "assistant" => AssistantTag,
                _ => throw new ArgumentException($"role '{m.Role}' is not in the chat template"),
            });
            ids.AddRange(Encode(m.Content));
            ids.Add(EndTag);
        }
        if (addGenerationPrompt) ids.Add(AssistantTag);
        return ids;
    }

    public IStreamDecoder CreateStreamDecoder() => new ByteDecoder();

    public IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling, CancellationToken cancellationToken = default) =>
        Engine.GenerateAsync(prompt, sampling, NoStop, cancellationToken);

    public IAsyncEnumerable<int> GenerateAsync(IReadOnlyList<int> prompt, SamplingParams sampling, Action<KvAdmission>? onAdmitted, CancellationToken cancellationToken = default) =>
        Engine.GenerateAsync(prompt, sampling, NoStop, onAdmitted, cancellationToken);

    public void Dispose() { }

    private static bool IsByte(int t) => t >= ByteBase && t < ByteBase + 256;

    private sealed class ByteDecoder : IStreamDecoder
    {
        private readonly Decoder _decoder = Encoding.UTF8.GetDecoder();

        public string Push(int token)
        {
            if (!IsByte(token)) return "";
            Span<byte> one = [(byte)(token - ByteBase)];
            Span<char> chars = stackalloc char[4];
            return new string(chars[.._decoder.GetChars(one, chars, flush: false)]);
        }

        public string Flush()
        {
            Span<char> chars = stackalloc char[4];
            return new string(chars[.._decoder.GetChars(ReadOnlySpan<byte>.Empty, chars, flush: true)]);
        }
    }
}

using System.Threading.Channels;
using Actors.Engine.Paging;
using Actors.Engine.Sampling;

namespace Actors.Engine.Runtime;

/// <summary>
/// One request in the engine: its tokens (prompt, then what it generated), how many of them have KV computed,
/// its pages and sampler, and the channel its tokens go out on. Touched only by the engine loop, except
/// <see cref="Cancelled"/>.
/// </summary>
internal sealed class Sequence(long id, IReadOnlyList<int> prompt, SamplingParams sampling, IReadOnlySet<int> stopTokenIds)
{
    public long Id { get; } = id;
    public List<int> Tokens { get; } = [.. prompt];
    public int PromptLength { get; } = prompt.Count;
    public Sampler Sampler { get; } = new(sampling);
    public SamplingParams Sampling { get; } = sampling;
    public IReadOnlySet<int> StopTokenIds { get; } = stopTokenIds;
    public Channel<int> Output { get; } = Channel.CreateUnbounded<int>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });

    /// <summary>Pages; replaced on each admission (a preempted sequence starts over).</summary>
    public PageTable Pages { get; set; } = new();

    /// <summary>Leading tokens whose KV is in <see cref="Pages"/>.</summary>
    public int Computed { get; set; }

    /// <summary>Length at admission: chunks below it are prefill and use its RoPE length; later tokens decode.</summary>
    public int PrefillLength { get; set; }

    public int Generated { get; set; }

    /// <summary>Stopwatch timestamp of the enqueue (time to first token).</summary>
    public long EnqueuedAt { get; set; }

    /// <summary>Called once, on the engine thread, at the first admission (null: nobody asked).</summary>
    public Action<KvAdmission>? OnAdmitted { get; init; }

    /// <summary>How the prompt's KV was found at the first admission; null until admitted.</summary>
    public KvAdmission? Admission { get; set; }

    /// <summary>An error to end the sequence with after the current step (its admission callback threw).</summary>
    public Exception? Fault { get; set; }

    public volatile bool Cancelled;

    public int Length => Tokens.Count;
}

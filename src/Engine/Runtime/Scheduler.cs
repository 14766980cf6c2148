using Actors.Engine.Paging;

namespace Actors.Engine.Runtime;

/// <summary>
/// Decides each step's work (after nano-vllm's scheduler, with chunked prefill): running sequences first, oldest
/// first, each computing its next chunk (a single decode token, or up to PrefillChunkTokens of prompt), then new
/// sequences admitted from the queue while pages, the token budget and MaxSequences allow. A sequence that needs a
/// page when none is free preempts the newest running sequence, which registers its computed full pages (so they stay
/// findable on the device and spill to the host tier when handed out again), gives back its pages and waits at the
/// head of the queue; on re-admission its pages are found again (device, host) and only the rest is recomputed.
/// Owned by the engine loop.
/// </summary>
internal sealed class Scheduler(BlockManager blocks, EngineOptions options, Func<int, string> pageVariant)
{
    private readonly LinkedList<Sequence> _waiting = new();
    private readonly List<Sequence> _running = [];

    public int WaitingCount => _waiting.Count;
    public int RunningCount => _running.Count;
    public bool IsIdle => _waiting.Count == 0 && _running.Count == 0;
    /// <summary>Prompt tokens found on the device at admission (prefix hits), since creation.</summary>
    public long PrefixHitTokens { get; private set; }

    /// <summary>Prompt tokens swapped in from the host tier at admission, since creation.</summary>
    public long HostHitTokens { get; private set; }

    /// <summary>Sequences admitted for the first time by the last <see cref="Schedule"/> call.</summary>
    public List<Sequence> FirstAdmissions { get; } = [];
    public long Preemptions { get; private set; }

    public IEnumerable<Sequence> All => _running.Concat(_waiting);

    public void Add(Sequence sequence) => _waiting.AddLast(sequence);

    /// <summary>
    /// This step's chunks, in order. Sequences that can never grow (alone in the pool, which is full) are put in
    /// <paramref name="exhausted"/> for the caller to finish.
    /// </summary>
    public List<(Sequence Sequence, int Tokens)> Schedule(List<Sequence> exhausted)
    {
        var batch = new List<(Sequence, int)>();
        FirstAdmissions.Clear();
        int budget = options.MaxBatchTokens;
        for (int i = 0; i < _running.Count && budget > 0; i++)
        {
            var s = _running[i];
            int chunk = Math.Min(Math.Min(s.Length - s.Computed, options.PrefillChunkTokens), budget);
            while (!blocks.CanAppend(s.Pages, s.Computed + chunk) && _running.Count - 1 > i)
            {
                Preempt(_running[^1]);
                _running.RemoveAt(_running.Count - 1);
            }
            if (!blocks.CanAppend(s.Pages, s.Computed + chunk))
            {
                if (i > 0) { Preempt(s); _running.RemoveAt(i); }
                else exhausted.Add(s);
                break; // everything after i was preempted already
            }
            blocks.MayAppend(s.Pages, s.Computed + chunk);
            batch.Add((s, chunk));
            budget -= chunk;
        }

        while (budget > 0 && _waiting.First is { } node && _running.Count < options.MaxSequences)
        {
            var s = node.Value;
            var table = new PageTable(pageVariant(s.Length));
            if (!blocks.CanAllocate(table, s.Tokens, options.EnablePrefixCaching)) break; // first come, first served
            blocks.Allocate(table, s.Tokens, options.EnablePrefixCaching);
            s.Pages = table;
            s.Computed = table.CachedTokens;
            s.PrefillLength = s.Length;
            PrefixHitTokens += table.DeviceHitTokens;
            HostHitTokens += table.HostHitTokens;
            if (s.Admission is null)
            {
                s.Admission = new KvAdmission(s.PromptLength, table.DeviceHitTokens, table.HostHitTokens);
                FirstAdmissions.Add(s);
            }
            _waiting.RemoveFirst();
            _running.Add(s);
            int chunk = Math.Min(Math.Min(s.Length - s.Computed, options.PrefillChunkTokens), budget);
            batch.Add((s, chunk));
            budget -= chunk;
        }
        return batch;
    }

    /// <summary>Takes a sequence out of the scheduler and gives back its pages.</summary>
    public void Remove(Sequence sequence)
    {
        if (!_running.Remove(sequence)) _waiting.Remove(sequence);
        blocks.Deallocate(sequence.Pages);
        sequence.Computed = 0;
    }

    private void Preempt(Sequence s)
    {
        // Its full computed pages become findable first, so they are cached (and spill to host) instead of dropped.
        if (options.EnablePrefixCaching) blocks.MarkComputed(s.Pages, s.Tokens, s.Computed);
        blocks.Deallocate(s.Pages);
        s.Computed = 0;
        _waiting.AddFirst(s);
        Preemptions++;
    }
}

using Actors.Engine.Runtime;

namespace Actors.Engine.Paging;

/// <summary>The host bytes of page <paramref name="index"/> of a batched page copy.</summary>
public delegate Span<byte> PageBuffer(int index);

/// <summary>The tier below the device page pool as <see cref="BlockManager"/> sees it: pages by chain hash.</summary>
internal interface ILowerKvTier
{
    bool Contains(UInt128 hash);

    /// <summary>Keeps a page from eviction while an admission reads it (Pin and Unpin pair up).</summary>
    void Pin(UInt128 hash);

    void Unpin(UInt128 hash);

    /// <summary>
    /// Copies device pages (their KV intact) down under their hashes; <paramref name="stored"/>[i] says whether page i
    /// is now held (already held counts). A page with no room is dropped: it can be recomputed from its tokens.
    /// </summary>
    void Spill(ReadOnlySpan<int> pages, ReadOnlySpan<UInt128> hashes, Span<bool> stored);

    /// <summary>Fills device <paramref name="pages"/> with the held pages of <paramref name="hashes"/> (pinned by the caller).</summary>
    void Load(ReadOnlySpan<UInt128> hashes, ReadOnlySpan<int> pages);
}

/// <summary>The host page pool below a runner's device pool: spills and swap-ins are batched page copies of the runner.</summary>
internal sealed class HostTier(HostPagePool pool, IModelRunner runner) : ILowerKvTier
{
    public HostPagePool Pool { get; } = pool;

    /// <summary>Pages copied from the device to the host, since creation.</summary>
    public long PagesSpilled { get; private set; }

    /// <summary>Pages copied from the host to the device, since creation.</summary>
    public long PagesSwappedIn { get; private set; }

    public bool Contains(UInt128 hash) => Pool.Contains(hash);

    public void Pin(UInt128 hash) => Pool.Pin(hash);

    public void Unpin(UInt128 hash) => Pool.Unpin(hash);

    public void Spill(ReadOnlySpan<int> pages, ReadOnlySpan<UInt128> hashes, Span<bool> stored)
    {
        var copyPages = new List<int>(pages.Length);
        var copyHashes = new List<UInt128>(pages.Length);
        try
        {
            for (int i = 0; i < pages.Length; i++)
            {
                // Reserved slots stay pinned until their bytes are in, so a later page of this batch cannot evict them.
                if (!Pool.TryReserve(hashes[i], out _, out bool existed)) { stored[i] = false; continue; }
                stored[i] = true;
                if (existed) continue; // identical KV (same chain hash) is there already
                Pool.Pin(hashes[i]);
                copyPages.Add(pages[i]);
                copyHashes.Add(hashes[i]);
            }
            if (copyPages.Count == 0) return;
            runner.ReadPages(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(copyPages), i =>
            {
                Pool.TryGet(copyHashes[i], out var page);
                return page;
            });
            PagesSpilled += copyPages.Count;
        }
        catch
        {
            foreach (var h in copyHashes) { Pool.Unpin(h); Pool.Remove(h); } // never leave unwritten pages findable
            copyHashes.Clear();
            throw;
        }
        finally
        {
            foreach (var h in copyHashes) Pool.Unpin(h);
        }
    }

    public void Load(ReadOnlySpan<UInt128> hashes, ReadOnlySpan<int> pages)
    {
        var keys = hashes.ToArray();
        foreach (var h in keys)
            if (!Pool.Contains(h)) throw new InvalidOperationException($"host KV page {h:x32} is not in the host pool; an admission must pin its pages");
        runner.WritePages(pages, i =>
        {
            Pool.TryGet(keys[i], out var page);
            return page;
        });
        foreach (var h in keys) Pool.Touch(h);
        PagesSwappedIn += keys.Length;
    }
}

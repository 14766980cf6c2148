namespace Actors.Engine.Paging;

/// <summary>
/// Host memory for KV pages, from the backend: plain arrays on the CPU, page-locked (pinned) memory on CUDA so that a
/// page copy to or from the device runs at PCIe speed.
/// </summary>
public interface IHostBuffer : IDisposable
{
    Span<byte> Span { get; }
}

/// <summary>An <see cref="IHostBuffer"/> over a managed array (CPU backend, tests).</summary>
public sealed class ArrayHostBuffer(int bytes) : IHostBuffer
{
    private readonly byte[] _data = new byte[bytes];

    public Span<byte> Span => _data;

    public void Dispose() { }
}

/// <summary>
/// The host tier of the KV pages (ARCHITECTURE.md §3): up to <see cref="Capacity"/> pages of <see cref="PageBytes"/>
/// bytes each, keyed by the page's chain hash, least recently used first out. Pages come in when the device pool hands
/// out a cached page (spill), by import of a snapshot, or by offload; a page evicted from here is lost to the tiers
/// and recomputed from the session's persisted tokens when needed. Entries can be pinned (an admission in progress
/// reads them) and are then never evicted. Storage is allocated lazily in slabs of at most 1 GiB as pages arrive.
/// Not thread-safe: the engine loop owns it.
/// </summary>
public sealed class HostPagePool : IDisposable
{
    /// <summary>Largest slab of host memory allocated at once.</summary>
    public const long MaxSlabBytes = 1L << 30;

    private readonly Func<int, IHostBuffer> _allocate;
    private readonly List<IHostBuffer> _slabs = [];
    private readonly int _pagesPerSlab;
    private readonly Dictionary<UInt128, int> _slotOf = [];
    private readonly UInt128[] _hash;
    private readonly int[] _pins;
    // LRU as an intrusive doubly linked list over slots: head is the least recently used.
    private readonly int[] _prev, _next;
    private int _head = -1, _tail = -1;
    private readonly Stack<int> _freeSlots = new();
    private int _slotsHandedOut;

    /// <param name="capacity">Pages the pool holds at most (≥ 0; 0 holds nothing).</param>
    /// <param name="pageBytes">Bytes of one page.</param>
    /// <param name="allocate">Host memory of the given number of bytes (pinned on CUDA).</param>
    /// <param name="maxSlabBytes">Largest single allocation (<see cref="MaxSlabBytes"/> unless a test says otherwise).</param>
    public HostPagePool(int capacity, long pageBytes, Func<int, IHostBuffer> allocate, long maxSlabBytes = MaxSlabBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxSlabBytes, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxSlabBytes, MaxSlabBytes);
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        ArgumentOutOfRangeException.ThrowIfLessThan(pageBytes, 1);
        ArgumentNullException.ThrowIfNull(allocate);
        if (pageBytes > maxSlabBytes)
            throw new ArgumentOutOfRangeException(nameof(pageBytes), pageBytes, $"a KV page of {pageBytes} bytes is larger than a host slab ({maxSlabBytes} bytes)");
        Capacity = capacity;
        PageBytes = pageBytes;
        _allocate = allocate;
        _pagesPerSlab = (int)Math.Max(1, Math.Min(capacity, maxSlabBytes / pageBytes));
        _hash = new UInt128[capacity];
        _pins = new int[capacity];
        _prev = new int[capacity];
        _next = new int[capacity];
    }

    public int Capacity { get; }
    public long PageBytes { get; }

    /// <summary>Pages held now.</summary>
    public int Count => _slotOf.Count;

    /// <summary>Bytes of host memory allocated so far (grows by slabs, never beyond the capacity's slabs).</summary>
    public long AllocatedBytes { get; private set; }

    /// <summary>Pages dropped to make room, since creation.</summary>
    public long Evictions { get; private set; }

    public bool Contains(UInt128 hash) => _slotOf.ContainsKey(hash);

    /// <summary>The bytes of the page stored under <paramref name="hash"/>; false when absent. Does not count as a use.</summary>
    public bool TryGet(UInt128 hash, out Span<byte> page)
    {
        if (_slotOf.TryGetValue(hash, out int slot)) { page = Slot(slot); return true; }
        page = default;
        return false;
    }

    /// <summary>Marks the page as just used (moves it to the end of the eviction order); false when absent.</summary>
    public bool Touch(UInt128 hash)
    {
        if (!_slotOf.TryGetValue(hash, out int slot)) return false;
        Unlink(slot);
        Append(slot);
        return true;
    }

    /// <summary>
    /// Makes room for a page under <paramref name="hash"/> and returns its bytes for the caller to fill at once (the
    /// page counts as most recently used). When the hash is present already, <paramref name="existed"/> is true, the
    /// page is touched and its bytes are returned unchanged. When the pool is full, the least recently used unpinned
    /// page is evicted; when every page is pinned (or the capacity is 0), returns false and stores nothing.
    /// </summary>
    public bool TryReserve(UInt128 hash, out Span<byte> page, out bool existed)
    {
        existed = _slotOf.TryGetValue(hash, out int slot);
        if (existed)
        {
            Touch(hash);
            page = Slot(slot);
            return true;
        }
        if (!TryTakeSlot(out slot)) { page = default; return false; }
        _slotOf.Add(hash, slot);
        _hash[slot] = hash;
        _pins[slot] = 0;
        Append(slot);
        page = Slot(slot);
        return true;
    }

    /// <summary>Keeps the page from eviction until as many <see cref="Unpin"/> calls; false when absent.</summary>
    public bool Pin(UInt128 hash)
    {
        if (!_slotOf.TryGetValue(hash, out int slot)) return false;
        _pins[slot]++;
        return true;
    }

    public void Unpin(UInt128 hash)
    {
        if (_slotOf.TryGetValue(hash, out int slot) && _pins[slot] > 0) _pins[slot]--;
    }

    /// <summary>Drops the page; false when absent.</summary>
    public bool Remove(UInt128 hash)
    {
        if (!_slotOf.Remove(hash, out int slot)) return false;
        Unlink(slot);
        _pins[slot] = 0;
        _freeSlots.Push(slot);
        return true;
    }

    /// <summary>Hashes held, least recently used first (for tests and diagnostics).</summary>
    public IEnumerable<UInt128> LeastRecentFirst()
    {
        for (int s = _head; s != -1; s = _next[s]) yield return _hash[s];
    }

    public void Dispose()
    {
        foreach (var slab in _slabs) slab.Dispose();
        _slabs.Clear();
        _slotOf.Clear();
        _head = _tail = -1;
    }

    private Span<byte> Slot(int slot) =>
        _slabs[slot / _pagesPerSlab].Span.Slice((int)(slot % _pagesPerSlab * PageBytes), (int)PageBytes);

    private bool TryTakeSlot(out int slot)
    {
        if (_freeSlots.TryPop(out slot)) return true;
        if (_slotsHandedOut < Capacity)
        {
            slot = _slotsHandedOut;
            if (slot / _pagesPerSlab == _slabs.Count)
            {
                int pages = Math.Min(_pagesPerSlab, Capacity - slot);
                long bytes = pages * PageBytes;
                _slabs.Add(_allocate((int)bytes));
                AllocatedBytes += bytes;
            }
            _slotsHandedOut++;
            return true;
        }
        for (int s = _head; s != -1; s = _next[s])
        {
            if (_pins[s] > 0) continue;
            _slotOf.Remove(_hash[s]);
            Unlink(s);
            Evictions++;
            slot = s;
            return true;
        }
        slot = -1;
        return false;
    }

    private void Append(int slot)
    {
        _prev[slot] = _tail; _next[slot] = -1;
        if (_tail >= 0) _next[_tail] = slot; else _head = slot;
        _tail = slot;
    }

    private void Unlink(int slot)
    {
        if (_prev[slot] >= 0) _next[_prev[slot]] = _next[slot]; else _head = _next[slot];
        if (_next[slot] >= 0) _prev[_next[slot]] = _prev[slot]; else _tail = _prev[slot];
        _prev[slot] = _next[slot] = -1;
    }
}

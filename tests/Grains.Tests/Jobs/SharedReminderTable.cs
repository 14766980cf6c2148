using Orleans.Runtime;

namespace Actors.Grains.Tests.Jobs;

/// <summary>
/// A reminder table shared by every silo of an in-process cluster and outliving any of them, as a persistent table
/// (Azure Table, SQL) does. Orleans' in-memory table lives in one grain, so killing the silo that holds it loses the
/// reminders; a job test that kills silos needs a table that survives them.
/// </summary>
public sealed class SharedReminderTable : IReminderTable
{
    private readonly Lock _sync = new();
    private readonly Dictionary<(GrainId, string), ReminderEntry> _rows = [];

    public int Count { get { lock (_sync) return _rows.Count; } }

    public Task Init() => Task.CompletedTask;

    public Task<ReminderTableData> ReadRows(GrainId grainId)
    {
        lock (_sync) return Task.FromResult(new ReminderTableData(_rows.Values.Where(r => r.GrainId == grainId).Select(Copy).ToList()));
    }

    // (begin, end] on the uniform hash ring; begin >= end wraps around (begin == end: the whole ring).
    public Task<ReminderTableData> ReadRows(uint begin, uint end)
    {
        bool InRange(uint h) => begin < end ? h > begin && h <= end : h > begin || h <= end;
        lock (_sync) return Task.FromResult(new ReminderTableData(_rows.Values.Where(r => InRange(r.GrainId.GetUniformHashCode())).Select(Copy).ToList()));
    }

    public Task<ReminderEntry?> ReadRow(GrainId grainId, string reminderName)
    {
        lock (_sync) return Task.FromResult(_rows.TryGetValue((grainId, reminderName), out var r) ? Copy(r) : null);
    }

    public Task<string?> UpsertRow(ReminderEntry entry)
    {
        var row = Copy(entry);
        row.ETag = Guid.NewGuid().ToString("N");
        lock (_sync) _rows[(row.GrainId, row.ReminderName)] = row;
        return Task.FromResult<string?>(row.ETag);
    }

    public Task<bool> RemoveRow(GrainId grainId, string reminderName, string eTag)
    {
        lock (_sync)
            return Task.FromResult(_rows.TryGetValue((grainId, reminderName), out var r) && r.ETag == eTag && _rows.Remove((grainId, reminderName)));
    }

    public Task TestOnlyClearTable()
    {
        lock (_sync) _rows.Clear();
        return Task.CompletedTask;
    }

    private static ReminderEntry Copy(ReminderEntry r) => new()
    {
        GrainId = r.GrainId, ReminderName = r.ReminderName, StartAt = r.StartAt, Period = r.Period, ETag = r.ETag,
    };
}

using Actors.Silo.Storage;

namespace Actors.Grains.Tests.Jobs;

public sealed class FileReminderTableTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "actors-reminders-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static ReminderEntry Entry(GrainId id, string name, int periodSeconds) => new()
    {
        GrainId = id, ReminderName = name, StartAt = new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc), Period = TimeSpan.FromSeconds(periodSeconds),
    };

    [Fact]
    public async Task Rows_outlive_the_table_and_etags_guard_removal()
    {
        var path = Path.Combine(_dir, "reminders.json");
        var a = GrainId.Create("sumjob", "sum-a");
        var b = GrainId.Create("sumjob", "sum-b");
        var table = new FileReminderTable(path);
        await table.Init();
        var etagA = await table.UpsertRow(Entry(a, "resume", 60));
        await table.UpsertRow(Entry(b, "resume", 30));
        var etagA2 = await table.UpsertRow(Entry(a, "resume", 90)); // an update replaces the row with a new etag
        Assert.NotEqual(etagA, etagA2);

        // A new table on the same file (the silo after a restart) sees the rows as written.
        var again = new FileReminderTable(path);
        await again.Init();
        var row = await again.ReadRow(a, "resume");
        Assert.NotNull(row);
        Assert.Equal((a, "resume", TimeSpan.FromSeconds(90), etagA2), (row.GrainId, row.ReminderName, row.Period, row.ETag));
        Assert.Equal(new DateTime(2026, 1, 2, 3, 4, 5, DateTimeKind.Utc), row.StartAt);
        Assert.Single((await again.ReadRows(b)).Reminders);
        Assert.Null(await again.ReadRow(a, "other"));

        Assert.False(await again.RemoveRow(a, "resume", etagA!)); // stale etag
        Assert.True(await again.RemoveRow(a, "resume", etagA2!));
        Assert.Empty((await table.ReadRows(a)).Reminders);
        Assert.Single((await table.ReadRows(0u, 0u)).Reminders); // begin == end: the whole ring
    }

    [Fact]
    public async Task Range_reads_follow_the_ring_with_wrap_around()
    {
        var table = new FileReminderTable(Path.Combine(_dir, "r.json"));
        await table.Init();
        var ids = Enumerable.Range(0, 40).Select(i => GrainId.Create("sumjob", $"sum-{i}")).ToList();
        foreach (var id in ids) await table.UpsertRow(Entry(id, "resume", 60));
        var hashes = ids.Select(i => i.GetUniformHashCode()).OrderBy(h => h).ToList();
        var mid = hashes[20];

        var low = (await table.ReadRows(0u, mid)).Reminders.Select(r => r.GrainId.GetUniformHashCode()).ToHashSet();
        var high = (await table.ReadRows(mid, 0u)).Reminders.Select(r => r.GrainId.GetUniformHashCode()).ToHashSet();
        // (0, mid] and (mid, 0] wrapping: disjoint and together every row (no hash is 0 here).
        Assert.Equal(hashes.Where(h => h > 0 && h <= mid).ToHashSet(), low);
        Assert.Equal(hashes.Where(h => h > mid).ToHashSet(), high);
        Assert.Equal(40, low.Count + high.Count);
    }

    [Fact]
    public async Task A_corrupt_file_names_itself()
    {
        var path = Path.Combine(_dir, "bad.json");
        Directory.CreateDirectory(_dir);
        File.WriteAllText(path, "[{\"grain\": ");
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => new FileReminderTable(path).Init());
        Assert.Contains("bad.json", e.Message);
    }
}

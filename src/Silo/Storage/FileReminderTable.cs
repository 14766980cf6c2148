using System.Text.Json;
using System.Text.Json.Serialization;

namespace Actors.Silo.Storage;

/// <summary>
/// Reminders in one JSON file under the data directory: the one-machine default's reminder table. Unlike Orleans'
/// in-memory table, its rows outlive the silo, so an unfinished summarization job resumes by itself after a restart.
/// Every operation reads the file, changes it and replaces it whole (write to a temp file, then rename), under a lock
/// shared by every table of this process on the same file; one silo process per data directory (its pid file) is
/// assumed. A multi-machine cluster needs a shared table (Azure Table, SQL) instead.
/// </summary>
public sealed class FileReminderTable(string path) : IReminderTable
{
    private static readonly Dictionary<string, object> Locks = new(StringComparer.Ordinal);
    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    private readonly string _path = Path.GetFullPath(path);

    public string FilePath => _path;

    private object Sync
    {
        get
        {
            lock (Locks)
            {
                if (!Locks.TryGetValue(_path, out var l)) Locks[_path] = l = new object();
                return l;
            }
        }
    }

    public Task Init()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(_path)!);
        lock (Sync) Load(); // a corrupt file fails the silo's start here, with its name
        return Task.CompletedTask;
    }

    public Task<ReminderTableData> ReadRows(GrainId grainId)
    {
        var key = grainId.ToString();
        lock (Sync) return Task.FromResult(new ReminderTableData(Load().Where(r => r.GrainId == key).Select(Entry).ToList()));
    }

    // (begin, end] on the uniform hash ring; begin >= end wraps around (begin == end: the whole ring).
    public Task<ReminderTableData> ReadRows(uint begin, uint end)
    {
        bool InRange(uint h) => begin < end ? h > begin && h <= end : h > begin || h <= end;
        lock (Sync)
            return Task.FromResult(new ReminderTableData(Load().Select(Entry).Where(e => InRange(e.GrainId.GetUniformHashCode())).ToList()));
    }

    public Task<ReminderEntry?> ReadRow(GrainId grainId, string reminderName)
    {
        var key = grainId.ToString();
        lock (Sync) return Task.FromResult(Load().Where(r => r.GrainId == key && r.Name == reminderName).Select(Entry).FirstOrDefault());
    }

    public Task<string?> UpsertRow(ReminderEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var row = new Row(entry.GrainId.ToString(), entry.ReminderName, entry.StartAt.ToUniversalTime(), entry.Period.Ticks, Guid.NewGuid().ToString("N"));
        lock (Sync)
        {
            var rows = Load();
            rows.RemoveAll(r => r.GrainId == row.GrainId && r.Name == row.Name);
            rows.Add(row);
            Save(rows);
        }
        return Task.FromResult<string?>(row.ETag);
    }

    public Task<bool> RemoveRow(GrainId grainId, string reminderName, string eTag)
    {
        var key = grainId.ToString();
        lock (Sync)
        {
            var rows = Load();
            var removed = rows.RemoveAll(r => r.GrainId == key && r.Name == reminderName && r.ETag == eTag) > 0;
            if (removed) Save(rows);
            return Task.FromResult(removed);
        }
    }

    public Task TestOnlyClearTable()
    {
        lock (Sync) Save([]);
        return Task.CompletedTask;
    }

    private List<Row> Load()
    {
        if (!File.Exists(_path)) return [];
        try
        {
            return JsonSerializer.Deserialize<List<Row>>(File.ReadAllBytes(_path), Json) ?? [];
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"reminder table '{_path}' is not valid JSON at line {e.LineNumber}, byte {e.BytePositionInLine}: {e.Message}", e);
        }
    }

    private void Save(List<Row> rows)
    {
        var temp = _path + ".tmp";
        File.WriteAllBytes(temp, JsonSerializer.SerializeToUtf8Bytes(rows, Json));
        File.Move(temp, _path, overwrite: true);
    }

    private static ReminderEntry Entry(Row r) => new()
    {
        GrainId = GrainId.Parse(r.GrainId),
        ReminderName = r.Name,
        StartAt = DateTime.SpecifyKind(r.StartAt, DateTimeKind.Utc),
        Period = TimeSpan.FromTicks(r.PeriodTicks),
        ETag = r.ETag,
    };

    private sealed record Row(
        [property: JsonPropertyName("grain")] string GrainId,
        [property: JsonPropertyName("name")] string Name,
        [property: JsonPropertyName("start")] DateTime StartAt,
        [property: JsonPropertyName("period_ticks")] long PeriodTicks,
        [property: JsonPropertyName("etag")] string ETag);
}

using System.Text;
using System.Text.Json;
using Actors.Silo.Storage;
using Microsoft.Extensions.Logging.Abstractions;
using Orleans.Storage;

namespace Actors.Silo.Tests;

public sealed class Note
{
    public string Title { get; set; } = "";
    public List<int> Numbers { get; set; } = [];
}

/// <summary>A state whose serialization fails part-way through, after some bytes are already written.</summary>
public sealed class Exploding
{
    public string Before { get; set; } = new string('a', 10_000);
    public string After => throw new IOException("disk gone mid-write");
}

public sealed class FileGrainStorageTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "actors-storage-" + Guid.NewGuid().ToString("N"));
    private readonly FileGrainStorage _storage;
    private static readonly GrainId Grain = GrainId.Create("document", "session/with:odd chars");

    public FileGrainStorageTests() =>
        _storage = new FileGrainStorage("test", new FileGrainStorageOptions { RootDirectory = _root }, NullLogger<FileGrainStorage>.Instance);

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    private string FilePath => _storage.GetFilePath("doc", Grain);

    [Fact]
    public async Task Missing_state_reads_as_new_without_record()
    {
        var s = new GrainState<Note>();
        await _storage.ReadStateAsync("doc", Grain, s);
        Assert.False(s.RecordExists);
        Assert.Null(s.ETag);
        Assert.NotNull(s.State);
        Assert.Equal("", s.State!.Title);
    }

    [Fact]
    public async Task Write_then_read_round_trips_in_a_fresh_instance()
    {
        var s = new GrainState<Note>(new Note { Title = "héllo", Numbers = [1, 2, 3] });
        await _storage.WriteStateAsync("doc", Grain, s);
        Assert.True(s.RecordExists);
        Assert.False(string.IsNullOrEmpty(s.ETag));
        Assert.True(File.Exists(FilePath));
        Assert.StartsWith(_root, FilePath);
        Assert.Equal(Path.Combine(_root, "doc"), Path.GetDirectoryName(FilePath));

        var other = new FileGrainStorage("test", new FileGrainStorageOptions { RootDirectory = _root }, NullLogger<FileGrainStorage>.Instance);
        var r = new GrainState<Note>();
        await other.ReadStateAsync("doc", Grain, r);
        Assert.True(r.RecordExists);
        Assert.Equal(s.ETag, r.ETag);
        Assert.Equal("héllo", r.State!.Title);
        Assert.Equal([1, 2, 3], r.State!.Numbers);

        // A second write changes the ETag and the content.
        var firstETag = r.ETag;
        r.State!.Numbers.Add(4);
        await other.WriteStateAsync("doc", Grain, r);
        Assert.NotEqual(firstETag, r.ETag);
        var again = new GrainState<Note>();
        await _storage.ReadStateAsync("doc", Grain, again);
        Assert.Equal([1, 2, 3, 4], again.State!.Numbers);
    }

    [Fact]
    public async Task Clear_deletes_and_resets()
    {
        var s = new GrainState<Note>(new Note { Title = "x" });
        await _storage.WriteStateAsync("doc", Grain, s);
        await _storage.ClearStateAsync("doc", Grain, s);
        Assert.False(File.Exists(FilePath));
        Assert.False(s.RecordExists);
        Assert.Null(s.ETag);
        Assert.Equal("", s.State!.Title);

        var r = new GrainState<Note>();
        await _storage.ReadStateAsync("doc", Grain, r);
        Assert.False(r.RecordExists);
        // Writing again after a clear starts from no ETag.
        await _storage.WriteStateAsync("doc", Grain, new GrainState<Note>(new Note { Title = "y" }));
    }

    [Fact]
    public async Task Stale_etag_is_a_conflict_on_write_and_on_clear()
    {
        var a = new GrainState<Note>(new Note { Title = "a" });
        await _storage.WriteStateAsync("doc", Grain, a);
        var b = new GrainState<Note>();
        await _storage.ReadStateAsync("doc", Grain, b);

        b.State!.Title = "b";
        await _storage.WriteStateAsync("doc", Grain, b); // b wins
        a.State!.Title = "stale";
        var e = await Assert.ThrowsAsync<InconsistentStateException>(() => _storage.WriteStateAsync("doc", Grain, a));
        Assert.Contains(FilePath, e.Message);
        await Assert.ThrowsAsync<InconsistentStateException>(() => _storage.ClearStateAsync("doc", Grain, a));

        // A writer that believes the record does not exist conflicts too.
        await Assert.ThrowsAsync<InconsistentStateException>(() => _storage.WriteStateAsync("doc", Grain, new GrainState<Note>(new Note())));

        var r = new GrainState<Note>();
        await _storage.ReadStateAsync("doc", Grain, r);
        Assert.Equal("b", r.State!.Title);
    }

    [Fact]
    public async Task A_write_that_dies_mid_way_leaves_the_old_file_whole_and_no_temp_files()
    {
        var s = new GrainState<Note>(new Note { Title = "kept" });
        await _storage.WriteStateAsync("doc", Grain, s);
        var before = File.ReadAllBytes(FilePath);

        var boom = new GrainState<Exploding>(new Exploding()) { ETag = s.ETag };
        await Assert.ThrowsAnyAsync<Exception>(() => _storage.WriteStateAsync("doc", Grain, boom));

        Assert.Equal(before, File.ReadAllBytes(FilePath));
        Assert.Equal([FilePath], Directory.GetFiles(Path.GetDirectoryName(FilePath)!));
        var r = new GrainState<Note>();
        await _storage.ReadStateAsync("doc", Grain, r);
        Assert.Equal("kept", r.State!.Title);
        Assert.Equal(s.ETag, r.ETag);
    }

    [Fact]
    public async Task A_leftover_temp_file_from_a_crash_is_ignored()
    {
        var s = new GrainState<Note>(new Note { Title = "kept" });
        await _storage.WriteStateAsync("doc", Grain, s);
        // What a process killed between creating and renaming the temp file leaves behind: a truncated temp file.
        File.WriteAllText(FilePath + ".0123456789abcdef.tmp", """{"eTag":"x","state":{"title":"tru""");
        var r = new GrainState<Note>();
        await _storage.ReadStateAsync("doc", Grain, r);
        Assert.Equal("kept", r.State!.Title);
        r.State!.Title = "next";
        await _storage.WriteStateAsync("doc", Grain, r);
    }

    [Theory]
    [InlineData("{\"eTag\":\"e1\",\"state\":{\"title\":\"tru", "invalid JSON at line 1")]
    [InlineData("[1,2]", "top level is a JSON Array")]
    [InlineData("{\"state\":{}}", "field 'eTag'")]
    [InlineData("{\"eTag\":\"e1\"}", "field 'state' is missing")]
    [InlineData("{\"eTag\":\"e1\",\"state\":{\"numbers\":\"nope\"}}", "at 'state.numbers'")]
    [InlineData("{\"eTag\":\"e1\",\"state\":null}", "field 'state' is null")]
    public async Task Corrupt_file_is_a_clear_error_naming_the_file_and_field(string content, string expected)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(FilePath)!);
        File.WriteAllBytes(FilePath, Encoding.UTF8.GetBytes(content));
        var e = await Assert.ThrowsAsync<InvalidDataException>(() => _storage.ReadStateAsync("doc", Grain, new GrainState<Note>()));
        Assert.Contains(FilePath, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public async Task File_holds_etag_and_state_as_json()
    {
        var s = new GrainState<Note>(new Note { Title = "t", Numbers = [7] });
        await _storage.WriteStateAsync("doc", Grain, s);
        using var doc = JsonDocument.Parse(File.ReadAllBytes(FilePath));
        Assert.Equal(s.ETag, doc.RootElement.GetProperty("eTag").GetString());
        Assert.Equal("t", doc.RootElement.GetProperty("state").GetProperty("title").GetString());
        Assert.Equal(7, doc.RootElement.GetProperty("state").GetProperty("numbers")[0].GetInt32());
    }

    [Fact]
    public void Long_grain_keys_get_hashed_file_names_that_stay_distinct()
    {
        var a = _storage.GetFilePath("doc", GrainId.Create("document", new string('k', 300) + "a"));
        var b = _storage.GetFilePath("doc", GrainId.Create("document", new string('k', 300) + "b"));
        Assert.NotEqual(a, b);
        Assert.True(Path.GetFileName(a).Length <= FileGrainStorageOptions.MaxFileNameLength);
    }

    [Fact]
    public void Missing_root_directory_option_is_a_clear_error()
    {
        var e = Assert.Throws<ArgumentException>(() => new FileGrainStorage("sessions", new FileGrainStorageOptions(), NullLogger<FileGrainStorage>.Instance));
        Assert.Contains("RootDirectory", e.Message);
        Assert.Contains("sessions", e.Message);
    }
}

public sealed class ActorsSiloOptionsTests
{
    [Fact]
    public void Defaults_env_and_args()
    {
        var env = new Dictionary<string, string?> { ["ACTORS_HOME"] = "/data/a", ["ACTORS_GATEWAY_PORT"] = "30100" };
        var o = ActorsSiloOptions.FromArgs(["--silo-port", "11200"], k => env.GetValueOrDefault(k));
        Assert.Equal(11200, o.SiloPort);
        Assert.Equal(30100, o.GatewayPort);
        Assert.Equal("/data/a", o.DataDirectory);
        Assert.Equal(Path.Combine("/data/a", "grains"), o.GrainStorageDirectory);

        var d = ActorsSiloOptions.FromArgs([], _ => null);
        Assert.Equal(11111, d.SiloPort);
        Assert.Equal(30000, d.GatewayPort);
        Assert.EndsWith(Path.Combine(".local", "share", "actors"), d.DataDirectory);

        Assert.Contains("--gateway-port", Assert.Throws<ArgumentException>(() => ActorsSiloOptions.FromArgs(["--gateway-port", "99999"], _ => null)).Message);
        Assert.Contains("--bogus", Assert.Throws<ArgumentException>(() => ActorsSiloOptions.FromArgs(["--bogus"], _ => null)).Message);
    }
}

public sealed class FileGrainStorageLargeStateTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "actors-storage-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        try { Directory.Delete(_root, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public async Task Large_states_round_trip_and_conflicts_are_still_detected()
    {
        var storage = new FileGrainStorage("big", new FileGrainStorageOptions { RootDirectory = _root }, NullLogger<FileGrainStorage>.Instance);
        var grain = GrainId.Create("document", "big");
        var numbers = Enumerable.Range(0, 200_000).Select(i => i * 7919 % 128_256).ToList();
        var s = new GrainState<Note>(new Note { Title = "big", Numbers = numbers });
        await storage.WriteStateAsync("doc", grain, s);
        Assert.True(new FileInfo(storage.GetFilePath("doc", grain)).Length > 4096);

        var r = new GrainState<Note>();
        await storage.ReadStateAsync("doc", grain, r);
        Assert.Equal(numbers, r.State!.Numbers);

        r.State.Numbers.Add(1);
        await storage.WriteStateAsync("doc", grain, r);
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("doc", grain, s));

        // A file written by hand with the ETag after the state is read the slow way, with the same result.
        var path = storage.GetFilePath("doc", grain);
        File.WriteAllText(path, "{\"state\":{\"title\":\"hand\",\"numbers\":[1]},\"eTag\":\"hand-made\"}");
        var h = new GrainState<Note>();
        await storage.ReadStateAsync("doc", grain, h);
        Assert.Equal("hand-made", h.ETag);
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("doc", grain, r));
        h.State!.Title = "rewritten";
        await storage.WriteStateAsync("doc", grain, h);
    }
}

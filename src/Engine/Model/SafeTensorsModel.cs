using System.Text.Json;

namespace Actors.Engine.Model;

/// <summary>
/// The weights of a Hugging Face model directory: `model.safetensors`, or shards listed by
/// `model.safetensors.index.json` ({"weight_map": {tensor: shard file name}}). Each shard is mapped once.
/// </summary>
public sealed class SafeTensorsModel : IWeightSource
{
    public const string SingleFileName = "model.safetensors";
    public const string IndexFileName = "model.safetensors.index.json";

    readonly List<SafeTensorsFile> _files;
    readonly Dictionary<string, SafeTensorsFile> _byTensor;

    public string Directory { get; }
    public IReadOnlyList<SafeTensorsFile> Files => _files;

    SafeTensorsModel(string directory, List<SafeTensorsFile> files, Dictionary<string, SafeTensorsFile> byTensor)
    {
        Directory = directory;
        _files = files;
        _byTensor = byTensor;
    }

    public static SafeTensorsModel Open(string modelDirectory)
    {
        if (!System.IO.Directory.Exists(modelDirectory))
            throw new ModelFormatException(modelDirectory, "(directory)", "model directory not found");
        string index = Path.Combine(modelDirectory, IndexFileName);
        if (File.Exists(index)) return OpenSharded(modelDirectory, index);
        string single = Path.Combine(modelDirectory, SingleFileName);
        if (File.Exists(single))
        {
            var file = SafeTensorsFile.Open(single);
            var map = file.Tensors.Keys.ToDictionary(k => k, _ => file, StringComparer.Ordinal);
            return new SafeTensorsModel(modelDirectory, [file], map);
        }
        throw new ModelFormatException(modelDirectory, "(directory)", $"neither {SingleFileName} nor {IndexFileName} is present");
    }

    static SafeTensorsModel OpenSharded(string directory, string indexPath)
    {
        Dictionary<string, string> weightMap = ReadWeightMap(indexPath);
        var shards = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        var byTensor = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        try
        {
            foreach (var (tensor, shardName) in weightMap)
            {
                if (!shards.TryGetValue(shardName, out var shard))
                {
                    string shardPath = Path.Combine(directory, shardName);
                    if (!File.Exists(shardPath))
                        throw new ModelFormatException(indexPath, $"weight_map.{tensor}", $"shard '{shardName}' does not exist in {directory}");
                    shard = SafeTensorsFile.Open(shardPath);
                    shards[shardName] = shard;
                }
                if (!shard.Contains(tensor))
                    throw new ModelFormatException(indexPath, $"weight_map.{tensor}", $"tensor is not in shard '{shardName}'");
                byTensor[tensor] = shard;
            }
        }
        catch
        {
            foreach (var s in shards.Values) s.Dispose();
            throw;
        }
        return new SafeTensorsModel(directory, [.. shards.Values], byTensor);
    }

    static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(File.ReadAllBytes(indexPath));
        }
        catch (JsonException e)
        {
            throw new ModelFormatException(indexPath, "(json)", $"not valid JSON: {e.Message}");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object ||
                !doc.RootElement.TryGetProperty("weight_map", out var wm) || wm.ValueKind != JsonValueKind.Object)
                throw new ModelFormatException(indexPath, "weight_map", "missing or not an object");
            var map = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var p in wm.EnumerateObject())
            {
                if (p.Value.ValueKind != JsonValueKind.String)
                    throw new ModelFormatException(indexPath, $"weight_map.{p.Name}", $"expected a shard file name, got {p.Value.ValueKind}");
                string shard = p.Value.GetString()!;
                // Shards live next to the index: a path that leaves the directory is refused.
                if (shard.Length == 0 || Path.GetFileName(shard) != shard || shard is "." or "..")
                    throw new ModelFormatException(indexPath, $"weight_map.{p.Name}", $"'{shard}' is not a plain file name");
                map[p.Name] = shard;
            }
            return map;
        }
    }

    public IEnumerable<string> Names => _byTensor.Keys;

    public bool Contains(string name) => _byTensor.ContainsKey(name);

    /// <summary>The file that holds a tensor (for raw access: <see cref="SafeTensorsFile.RawBytes"/>).</summary>
    public SafeTensorsFile FileOf(string name) =>
        _byTensor.TryGetValue(name, out var f) ? f
            : throw new ModelFormatException(Directory, $"tensor '{name}'", "not found in the model's safetensors files");

    public SafeTensorInfo Info(string name) => FileOf(name).Info(name);

    public IReadOnlyList<long> Shape(string name) => Info(name).Shape;

    public float[] ReadFloat32(string name, params long[] expectedShape) => FileOf(name).ReadFloat32(name, expectedShape);

    /// <summary>Reads a tensor converted to f32 into a caller's buffer of exactly its element count.</summary>
    public void ReadFloat32(string name, Span<float> destination) => FileOf(name).ReadFloat32(name, destination);

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}

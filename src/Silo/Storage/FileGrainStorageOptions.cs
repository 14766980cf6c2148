using System.Text.Json;

namespace Actors.Silo.Storage;

/// <summary>Options of one named <see cref="FileGrainStorage"/>.</summary>
public sealed class FileGrainStorageOptions
{
    /// <summary>Directory that holds one subdirectory per state name and one JSON file per grain. Required.</summary>
    public string RootDirectory { get; set; } = "";

    /// <summary>Serializer options for the state objects; default: web defaults (camelCase), not indented.</summary>
    public JsonSerializerOptions JsonOptions { get; set; } = new(JsonSerializerDefaults.Web);

    /// <summary>File names longer than this are replaced by a hash of the grain id (file systems cap names at 255 bytes).</summary>
    public const int MaxFileNameLength = 200;
}

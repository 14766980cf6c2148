namespace Actors.Engine.Model;

/// <summary>Named tensors of a model (safetensors, single or sharded), converted to f32 on read.</summary>
public interface IWeightSource : IDisposable
{
    IEnumerable<string> Names { get; }
    bool Contains(string name);
    /// <summary>Shape of a tensor as stored.</summary>
    IReadOnlyList<long> Shape(string name);
    /// <summary>
    /// Reads a tensor as f32 (row-major). Throws a ModelFormatException naming the file and tensor when the tensor is
    /// missing or its shape differs from <paramref name="expectedShape"/>.
    /// </summary>
    float[] ReadFloat32(string name, params long[] expectedShape);
}

using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;

namespace Actors.Engine.Model;

/// <summary>
/// Writes a .safetensors file from f32 data, converting to the stored dtype (bf16: round to nearest even;
/// f16: System.Half). Tensors are laid out in the order given; the header is padded with spaces to a multiple
/// of 8 bytes so that the data region is aligned, as the reference implementation does.
/// </summary>
public static class SafeTensorsWriter
{
    public static void Write(string path, IEnumerable<(string Name, SafeTensorsDType DType, long[] Shape, float[] Data)> tensors) =>
        Write(path, tensors, metadata: null);

    public static void Write(string path, IEnumerable<(string Name, SafeTensorsDType DType, long[] Shape, float[] Data)> tensors,
        IReadOnlyDictionary<string, string>? metadata)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var list = tensors.ToList();
        var names = new HashSet<string>(StringComparer.Ordinal);
        using var headerStream = new MemoryStream();
        using (var json = new Utf8JsonWriter(headerStream))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject("__metadata__");
                foreach (var (k, v) in metadata) json.WriteString(k, v);
                json.WriteEndObject();
            }
            long offset = 0;
            foreach (var (name, dtype, shape, data) in list)
            {
                if (name is null || name == "__metadata__" || !names.Add(name))
                    throw new ArgumentException($"tensor name '{name}' is null, reserved or repeated", nameof(tensors));
                ArgumentNullException.ThrowIfNull(shape);
                ArgumentNullException.ThrowIfNull(data);
                long count = 1;
                foreach (long d in shape)
                {
                    if (d < 0) throw new ArgumentException($"tensor '{name}': negative dimension in [{string.Join(", ", shape)}]", nameof(tensors));
                    count = checked(count * d);
                }
                if (count != data.Length)
                    throw new ArgumentException($"tensor '{name}': shape [{string.Join(", ", shape)}] has {count} elements, data has {data.Length}", nameof(tensors));
                long bytes = count * dtype.Size();
                json.WriteStartObject(name);
                json.WriteString("dtype", dtype.HeaderName());
                json.WriteStartArray("shape");
                foreach (long d in shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        int pad = (int)((8 - headerStream.Length % 8) % 8);
        for (int i = 0; i < pad; i++) headerStream.WriteByte((byte)' ');

        using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16);
        Span<byte> len = stackalloc byte[8];
        BitConverter.TryWriteBytes(len, (ulong)headerStream.Length);
        file.Write(len);
        headerStream.Position = 0;
        headerStream.CopyTo(file);
        foreach (var (_, dtype, _, data) in list)
        {
            switch (dtype)
            {
                case SafeTensorsDType.F32:
                    file.Write(MemoryMarshal.AsBytes(data.AsSpan()));
                    break;
                case SafeTensorsDType.BF16:
                {
                    var buf = new ushort[data.Length];
                    DTypeConversion.Float32ToBf16(data, buf);
                    file.Write(MemoryMarshal.AsBytes(buf.AsSpan()));
                    break;
                }
                case SafeTensorsDType.F16:
                {
                    var buf = new Half[data.Length];
                    DTypeConversion.Float32ToF16(data, buf);
                    file.Write(MemoryMarshal.AsBytes(buf.AsSpan()));
                    break;
                }
                default:
                    throw new ArgumentOutOfRangeException(nameof(tensors), dtype, "unknown dtype");
            }
        }
    }
}

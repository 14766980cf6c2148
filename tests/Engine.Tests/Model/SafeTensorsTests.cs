using System.Buffers.Binary;
using System.Text;
using Actors.Engine.Model;

namespace Actors.Engine.Tests.Model;

public class SafeTensorsTests
{
    static float[] Random(int n, int seed)
    {
        var rng = new Random(seed);
        var a = new float[n];
        for (int i = 0; i < n; i++) a[i] = (float)(rng.NextDouble() * 8 - 4) * MathF.Pow(10, rng.Next(-3, 4));
        return a;
    }

    /// <summary>Independent bf16 reference: round the f32 to 8 significant bits, nearest-even, via integer arithmetic on the bits.</summary>
    static float ReferenceBf16(float x)
    {
        if (float.IsNaN(x)) return float.NaN;
        uint bits = BitConverter.SingleToUInt32Bits(x);
        uint upper = bits >> 16, lower = bits & 0xFFFF;
        if (lower > 0x8000 || (lower == 0x8000 && (upper & 1) == 1)) upper++;
        return BitConverter.UInt32BitsToSingle(upper << 16);
    }

    static float Expected(SafeTensorsDType dtype, float x) => dtype switch
    {
        SafeTensorsDType.F32 => x,
        SafeTensorsDType.BF16 => ReferenceBf16(x),
        SafeTensorsDType.F16 => (float)(Half)x,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    [Theory]
    [InlineData(SafeTensorsDType.F32)]
    [InlineData(SafeTensorsDType.F16)]
    [InlineData(SafeTensorsDType.BF16)]
    public void Round_trip_odd_shapes(SafeTensorsDType dtype)
    {
        using var dir = new TempDir();
        string path = dir.File("model.safetensors");
        long[][] shapes = [[3, 5, 7], [1], [0, 4], [], [13], [2, 1, 3, 1], [17, 33]];
        var tensors = shapes.Select((s, i) =>
        {
            int n = (int)s.Aggregate(1L, (a, b) => a * b);
            return ($"t{i}.weight", dtype, s, Random(n, i));
        }).ToList();
        SafeTensorsWriter.Write(path, tensors, new Dictionary<string, string> { ["format"] = "pt" });

        using var f = SafeTensorsFile.Open(path);
        Assert.Equal("pt", f.Metadata["format"]);
        Assert.Equal(shapes.Length, f.Tensors.Count);
        // header is padded so that the data region starts 8-aligned
        Assert.Equal(0, (8 + (long)BinaryPrimitives.ReadUInt64LittleEndian(File.ReadAllBytes(path).AsSpan(0, 8))) % 8);
        foreach (var (name, dt, shape, data) in tensors)
        {
            var info = f.Info(name);
            Assert.Equal(dt, info.DType);
            Assert.Equal(shape, info.Shape);
            Assert.Equal(data.Length * dt.Size(), info.ByteLength);
            var read = f.ReadFloat32(name, shape.Length == 0 ? [] : shape);
            Assert.Equal(data.Select(x => Expected(dt, x)).ToArray(), read);
        }
    }

    [Fact]
    public void Bf16_rounds_to_nearest_even_and_keeps_specials()
    {
        float one = 1f, ulp = MathF.Pow(2, -7);
        float[] input =
        [
            one + ulp / 2,                 // tie, even is 1
            one + 3 * ulp / 2,             // tie, even is 1 + 2 ulp
            one + ulp / 2 + MathF.Pow(2, -20), // above the tie: up
            -(one + ulp / 2 - MathF.Pow(2, -20)), // below the tie: down
            float.PositiveInfinity, float.NegativeInfinity, float.MaxValue, 0f, -0f, float.Epsilon,
        ];
        float[] expected = [one, one + 2 * ulp, one + ulp, -one, float.PositiveInfinity, float.NegativeInfinity, float.PositiveInfinity, 0f, -0f, 0f];
        for (int i = 0; i < input.Length; i++)
            Assert.Equal(expected[i], DTypeConversion.Bf16ToFloat32(DTypeConversion.Float32ToBf16(input[i])));
        Assert.True(float.IsNaN(DTypeConversion.Bf16ToFloat32(DTypeConversion.Float32ToBf16(float.NaN))));
        // a NaN whose payload lives only in the low bits must not become infinity
        Assert.True(float.IsNaN(DTypeConversion.Bf16ToFloat32(DTypeConversion.Float32ToBf16(BitConverter.UInt32BitsToSingle(0x7F800001)))));
    }

    [Fact]
    public void Bf16_widening_vector_paths_match_scalar_for_every_length()
    {
        var rng = new Random(7);
        for (int n = 0; n <= 80; n++)
        {
            var bits = new ushort[n];
            for (int i = 0; i < n; i++) bits[i] = (ushort)rng.Next(0, 65536);
            var dst = new float[n + 1];
            dst[n] = 42f;
            DTypeConversion.Bf16ToFloat32(bits, dst);
            for (int i = 0; i < n; i++)
                Assert.Equal(BitConverter.UInt32BitsToSingle((uint)bits[i] << 16), dst[i]);
            Assert.Equal(42f, dst[n]); // nothing written past the end
        }
    }

    [Theory]
    [InlineData(SafeTensorsDType.BF16)]
    [InlineData(SafeTensorsDType.F16)]
    [InlineData(SafeTensorsDType.F32)]
    public void Large_tensor_uses_the_parallel_path_correctly(SafeTensorsDType dtype)
    {
        using var dir = new TempDir();
        string path = dir.File("big.safetensors");
        int n = (1 << 21) + 12345;
        var data = Random(n, 3);
        SafeTensorsWriter.Write(path, [("big", dtype, [n], data)]);
        using var f = SafeTensorsFile.Open(path);
        var read = f.ReadFloat32("big", n);
        for (int i = 0; i < n; i++)
            if (read[i] != Expected(dtype, data[i]))
                Assert.Fail($"element {i}: {read[i]} vs {Expected(dtype, data[i])}");
    }

    [Fact]
    public void Single_file_model_implements_the_weight_source()
    {
        using var dir = new TempDir();
        var w = Random(6, 1);
        SafeTensorsWriter.Write(dir.File("model.safetensors"), [("a", SafeTensorsDType.F32, [2, 3], w), ("b", SafeTensorsDType.BF16, [1], [2.5f])]);
        using IWeightSource m = SafeTensorsModel.Open(dir.Path);
        Assert.Equal(["a", "b"], m.Names.Order());
        Assert.True(m.Contains("a"));
        Assert.False(m.Contains("c"));
        Assert.Equal([2L, 3L], m.Shape("a"));
        Assert.Equal(w, m.ReadFloat32("a", 2, 3));
        Assert.Equal([2.5f], m.ReadFloat32("b"));
        var e = Assert.Throws<ModelFormatException>(() => m.ReadFloat32("c"));
        Assert.Contains("'c'", e.Message);
    }

    [Fact]
    public void Sharded_model_opens_each_shard_once()
    {
        using var dir = new TempDir();
        var a = Random(12, 1);
        var b = Random(5, 2);
        var c = Random(7, 3);
        SafeTensorsWriter.Write(dir.File("model-00001-of-00002.safetensors"), [("a", SafeTensorsDType.BF16, [3, 4], a), ("b", SafeTensorsDType.F32, [5], b)]);
        SafeTensorsWriter.Write(dir.File("model-00002-of-00002.safetensors"), [("c", SafeTensorsDType.F16, [7], c)]);
        File.WriteAllText(dir.File("model.safetensors.index.json"),
            "{\"metadata\":{\"total_size\":66},\"weight_map\":{\"a\":\"model-00001-of-00002.safetensors\"," +
            "\"b\":\"model-00001-of-00002.safetensors\",\"c\":\"model-00002-of-00002.safetensors\"}}");
        using var m = SafeTensorsModel.Open(dir.Path);
        Assert.Equal(2, m.Files.Count);
        Assert.Equal(["a", "b", "c"], m.Names.Order());
        Assert.Equal(a.Select(ReferenceBf16).ToArray(), m.ReadFloat32("a", 3, 4));
        Assert.Equal(b, m.ReadFloat32("b", 5));
        var into = new float[5];
        m.ReadFloat32("b", into.AsSpan());
        Assert.Equal(b, into);
        Assert.Throws<ArgumentException>(() => m.ReadFloat32("b", new float[4].AsSpan()));
        Assert.Equal(c.Select(x => (float)(Half)x).ToArray(), m.ReadFloat32("c", 7));
        Assert.EndsWith("model-00002-of-00002.safetensors", m.FileOf("c").Path);
        Assert.Equal(SafeTensorsDType.F16, m.Info("c").DType);
    }

    [Fact]
    public void Missing_shard_is_named()
    {
        using var dir = new TempDir();
        SafeTensorsWriter.Write(dir.File("s1.safetensors"), [("a", SafeTensorsDType.F32, [1], [1f])]);
        File.WriteAllText(dir.File("model.safetensors.index.json"),
            "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}");
        var e = Assert.Throws<ModelFormatException>(() => SafeTensorsModel.Open(dir.Path));
        Assert.Contains("s2.safetensors", e.Message);
        Assert.Equal("weight_map.b", e.Field);
        Assert.EndsWith("model.safetensors.index.json", e.File);
    }

    [Fact]
    public void Index_errors()
    {
        using var dir = new TempDir();
        SafeTensorsWriter.Write(dir.File("s1.safetensors"), [("a", SafeTensorsDType.F32, [1], [1f])]);
        string index = dir.File("model.safetensors.index.json");
        File.WriteAllText(index, "{\"weight_map\":{\"zzz\":\"s1.safetensors\"}}");
        Assert.Contains("not in shard", Assert.Throws<ModelFormatException>(() => SafeTensorsModel.Open(dir.Path)).Message);
        File.WriteAllText(index, "{\"weight_map\":{\"a\":\"../s1.safetensors\"}}");
        Assert.Contains("plain file name", Assert.Throws<ModelFormatException>(() => SafeTensorsModel.Open(dir.Path)).Message);
        File.WriteAllText(index, "{\"weight_map\":[]}");
        Assert.Equal("weight_map", Assert.Throws<ModelFormatException>(() => SafeTensorsModel.Open(dir.Path)).Field);
        File.WriteAllText(index, "{nope");
        Assert.Equal("(json)", Assert.Throws<ModelFormatException>(() => SafeTensorsModel.Open(dir.Path)).Field);
    }

    [Fact]
    public void Empty_or_missing_directory()
    {
        using var dir = new TempDir();
        Assert.Contains("model.safetensors", Assert.Throws<ModelFormatException>(() => SafeTensorsModel.Open(dir.Path)).Message);
        Assert.Throws<ModelFormatException>(() => SafeTensorsModel.Open(dir.File("nope")));
    }

    [Fact]
    public void Expected_shape_mismatch_names_tensor_and_both_shapes()
    {
        using var dir = new TempDir();
        string path = dir.File("m.safetensors");
        SafeTensorsWriter.Write(path, [("layers.0.w", SafeTensorsDType.F32, [2, 3], new float[6])]);
        using var f = SafeTensorsFile.Open(path);
        var e = Assert.Throws<ModelFormatException>(() => f.ReadFloat32("layers.0.w", 3, 2));
        Assert.Contains("layers.0.w", e.Message);
        Assert.Contains("[2, 3]", e.Message);
        Assert.Contains("[3, 2]", e.Message);
        Assert.Equal(path, e.File);
    }

    // ---- malformed files ----

    static void WriteRaw(string path, string header, int dataBytes, ulong? lengthOverride = null)
    {
        var h = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + h.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, lengthOverride ?? (ulong)h.Length);
        h.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
    }

    static ModelFormatException OpenFails(string path) => Assert.Throws<ModelFormatException>(() => SafeTensorsFile.Open(path));

    [Fact]
    public void Truncated_files()
    {
        using var dir = new TempDir();
        string path = dir.File("t.safetensors");
        File.WriteAllBytes(path, [1, 2, 3, 4, 5]);
        var e = OpenFails(path);
        Assert.Equal(path, e.File);
        Assert.Contains("8-byte", e.Message);
        File.WriteAllBytes(path, []);
        OpenFails(path);

        // a valid file cut inside its data: the last tensor's offsets now run past the data region
        SafeTensorsWriter.Write(path, [("a", SafeTensorsDType.F32, [4], new float[4]), ("b", SafeTensorsDType.F32, [4], new float[4])]);
        var all = File.ReadAllBytes(path);
        File.WriteAllBytes(path, all[..^3]);
        e = OpenFails(path);
        Assert.Contains("'b'", e.Field);
        Assert.Contains("data_offsets", e.Field);

        // cut inside the header
        File.WriteAllBytes(path, all[..20]);
        Assert.Equal("header length", OpenFails(path).Field);
    }

    [Fact]
    public void Header_length_past_end_or_too_big()
    {
        using var dir = new TempDir();
        string path = dir.File("h.safetensors");
        WriteRaw(path, "{}", 0, lengthOverride: 1_000_000);
        var e = OpenFails(path);
        Assert.Equal("header length", e.Field);
        Assert.Contains("1000000", e.Message);
        WriteRaw(path, "{}", 0, lengthOverride: ulong.MaxValue);
        Assert.Equal("header length", OpenFails(path).Field);
    }

    [Theory]
    [InlineData("not json at all")]
    [InlineData("{\"a\":")]
    [InlineData("[1,2]")]
    [InlineData("\"str\"")]
    [InlineData("{} x")]
    public void Header_not_a_json_object(string header)
    {
        using var dir = new TempDir();
        string path = dir.File("j.safetensors");
        WriteRaw(path, header, 0);
        Assert.Equal("header", OpenFails(path).Field);
    }

    [Theory]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,1000]}}", 16, "data_offsets")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,4]}}", 16, "data_offsets")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 16, "data_offsets")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 16, "data_offsets")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,\"8\"]}}", 16, "data_offsets")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 16, "shape")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 16, "shape")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}", 16, "shape")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 16, "shape")]
    [InlineData("{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 16, "dtype")]
    [InlineData("{\"w\":[1,2]}", 16, "'w'")]
    [InlineData("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__.k")]
    public void Malformed_entries_are_named(string header, int dataBytes, string fieldPart)
    {
        using var dir = new TempDir();
        string path = dir.File("e.safetensors");
        WriteRaw(path, header, dataBytes);
        var e = OpenFails(path);
        Assert.Contains(fieldPart, e.Field);
        Assert.Equal(path, e.File);
    }

    [Fact]
    public void Shape_and_size_mismatch()
    {
        using var dir = new TempDir();
        string path = dir.File("s.safetensors");
        WriteRaw(path, "{\"w\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8);
        var e = OpenFails(path);
        Assert.Equal("tensor 'w'", e.Field);
        Assert.Contains("6 bytes", e.Message);
        Assert.Contains("[0, 8]", e.Message);
    }

    [Fact]
    public void Unknown_dtype_names_tensor_and_dtype()
    {
        using var dir = new TempDir();
        string path = dir.File("d.safetensors");
        WriteRaw(path, "{\"model.embed\":{\"dtype\":\"I8\",\"shape\":[8],\"data_offsets\":[0,8]}}", 8);
        var e = OpenFails(path);
        Assert.Contains("model.embed", e.Field);
        Assert.Contains("I8", e.Message);
        Assert.Contains("F32, F16, BF16", e.Message);
    }

    [Fact]
    public void Overlapping_tensors_are_refused()
    {
        using var dir = new TempDir();
        string path = dir.File("o.safetensors");
        WriteRaw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12);
        var e = OpenFails(path);
        Assert.Contains("overlap", e.Message);
    }

    [Fact]
    public void Writer_refuses_inconsistent_input()
    {
        using var dir = new TempDir();
        string path = dir.File("w.safetensors");
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [("a", SafeTensorsDType.F32, [2, 2], new float[3])]));
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [("a", SafeTensorsDType.F32, [1], new float[1]), ("a", SafeTensorsDType.F32, [1], new float[1])]));
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [("__metadata__", SafeTensorsDType.F32, [1], new float[1])]));
    }

    [Fact]
    public void Raw_bytes_are_the_stored_dtype()
    {
        using var dir = new TempDir();
        string path = dir.File("r.safetensors");
        SafeTensorsWriter.Write(path, [("x", SafeTensorsDType.BF16, [2], [1f, -2f])]);
        using var f = SafeTensorsFile.Open(path);
        var raw = f.RawBytes("x");
        Assert.Equal([0x80, 0x3F, 0x00, 0xC0], raw.ToArray()); // 0x3F80 = 1.0, 0xC000 = -2.0, little-endian
        f.Dispose();
        Assert.Throws<ObjectDisposedException>(() => f.ReadFloat32("x"));
    }
}

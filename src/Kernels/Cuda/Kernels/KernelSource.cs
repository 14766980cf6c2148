namespace Actors.Kernels.Cuda.Kernels;

/// <summary>The embedded CUDA C sources: common.cuh prepended to a .cu, with #line so NVRTC logs name the right file and line.</summary>
public static class KernelSource
{
    public static string Load(string fileName)
    {
        string common = Read("common.cuh");
        return $"#line 1 \"common.cuh\"\n{common}\n#line 1 \"{fileName}\"\n{Read(fileName)}";
    }

    /// <summary>Several embedded sources in order (each with its #line), e.g. common.cuh, hopper.cuh, then a kernel file.</summary>
    public static string Concat(params string[] fileNames) =>
        string.Join("\n", fileNames.Select(f => $"#line 1 \"{f}\"\n{Read(f)}"));

    private static string Read(string name)
    {
        using var stream = typeof(KernelSource).Assembly.GetManifestResourceStream(name)
            ?? throw new InvalidOperationException($"embedded CUDA source '{name}' is missing from {typeof(KernelSource).Assembly.GetName().Name}");
        using var reader = new StreamReader(stream);
        return reader.ReadToEnd();
    }
}

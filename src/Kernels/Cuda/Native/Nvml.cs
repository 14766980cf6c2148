using System.Runtime.InteropServices;

namespace Actors.Kernels.Cuda.Native;

/// <summary>
/// Raw bindings to NVML (libnvidia-ml.so.1, installed with the driver), for the power readings of
/// <see cref="PowerMeter"/>. nvmlDevice_t is a pointer; every function returns an nvmlReturn_t (0 = success).
/// </summary>
public static unsafe partial class Nvml
{
    static Nvml() => NativeLibraries.EnsureResolver();

    /// <summary>nvmlClockType_t NVML_CLOCK_SM; nvmlTemperatureSensors_t NVML_TEMPERATURE_GPU.</summary>
    public const int ClockSm = 1, TemperatureGpu = 0;

    /// <summary>NVML_ERROR_NOT_SUPPORTED: the device has no such sensor (energy needs Volta or newer).</summary>
    public const int ErrorNotSupported = 3;

    [LibraryImport(NativeLibraries.Nvml)] public static partial int nvmlInit_v2();
    [LibraryImport(NativeLibraries.Nvml)] public static partial int nvmlShutdown();
    [LibraryImport(NativeLibraries.Nvml)] public static partial byte* nvmlErrorString(int result);
    [LibraryImport(NativeLibraries.Nvml)] public static partial int nvmlDeviceGetHandleByPciBusId_v2(byte* pciBusId, IntPtr* device);
    [LibraryImport(NativeLibraries.Nvml)] public static partial int nvmlDeviceGetTotalEnergyConsumption(IntPtr device, ulong* millijoules);
    [LibraryImport(NativeLibraries.Nvml)] public static partial int nvmlDeviceGetPowerUsage(IntPtr device, uint* milliwatts);
    [LibraryImport(NativeLibraries.Nvml)] public static partial int nvmlDeviceGetEnforcedPowerLimit(IntPtr device, uint* milliwatts);
    [LibraryImport(NativeLibraries.Nvml)] public static partial int nvmlDeviceGetClockInfo(IntPtr device, int type, uint* megahertz);
    [LibraryImport(NativeLibraries.Nvml)] public static partial int nvmlDeviceGetTemperature(IntPtr device, int sensor, uint* celsius);

    public static void Check(int status, string call, string arguments = "")
    {
        if (status == 0) return;
        string text;
        try { text = Marshal.PtrToStringUTF8((IntPtr)nvmlErrorString(status)) ?? "?"; }
        catch (EntryPointNotFoundException) { text = "?"; }
        throw new NvmlException(call, arguments, status, text);
    }
}

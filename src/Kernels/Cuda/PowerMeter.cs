using System.Diagnostics;
using System.Text;
using Actors.Kernels.Cuda.Native;

namespace Actors.Kernels.Cuda;

/// <summary>
/// The power sensors of one CUDA device, read through NVML: the energy it has used since the driver loaded, its power
/// draw, the power limit it runs under, its SM clock and temperature. A card at its power limit runs a long prefill
/// in (energy / limit) seconds whatever the kernels do, so the benchmarks report joules beside milliseconds.
/// Found by PCI address (NVML's device order need not be CUDA's). Thread-safe: each call is one NVML query.
/// </summary>
public sealed unsafe class PowerMeter : IDisposable
{
    private readonly IntPtr _device;
    private int _disposed;

    private PowerMeter(IntPtr device, string pciBusId)
    {
        _device = device;
        PciBusId = pciBusId;
    }

    /// <summary>The card's PCI address (<see cref="CudaDevice.PciBusId"/>).</summary>
    public string PciBusId { get; }

    /// <summary>
    /// Opens the meter of <paramref name="device"/>, or says why not: no NVML library, NVML failing to start, no NVML
    /// device at that PCI address, or no energy counter (before Volta).
    /// </summary>
    public static bool TryOpen(CudaDevice device, out PowerMeter? meter, out string reason)
    {
        ArgumentNullException.ThrowIfNull(device);
        meter = null;
        bool started = false;
        try
        {
            string bus = device.PciBusId;
            Nvml.Check(Nvml.nvmlInit_v2(), "nvmlInit_v2");
            started = true;
            IntPtr handle;
            byte[] address = Encoding.ASCII.GetBytes(bus + "\0");
            fixed (byte* a = address)
                Nvml.Check(Nvml.nvmlDeviceGetHandleByPciBusId_v2(a, &handle), "nvmlDeviceGetHandleByPciBusId_v2", bus);
            ulong mj;
            Nvml.Check(Nvml.nvmlDeviceGetTotalEnergyConsumption(handle, &mj), "nvmlDeviceGetTotalEnergyConsumption", bus);
            meter = new PowerMeter(handle, bus);
            reason = $"NVML on {bus}";
            return true;
        }
        catch (DllNotFoundException e) { reason = $"no NVML library: {e.Message}"; }
        catch (EntryPointNotFoundException e) { reason = $"NVML too old: {e.Message}"; }
        catch (NvmlException e) { reason = $"NVML unusable: {e.Message}"; }
        catch (CudaException e) { reason = $"no PCI address for the device: {e.Message}"; }
        if (started) Nvml.nvmlShutdown();
        return false;
    }

    /// <summary>Energy the card has used since the driver loaded, in joules (NVML counts millijoules).</summary>
    public double EnergyJoules()
    {
        ulong mj;
        Nvml.Check(Nvml.nvmlDeviceGetTotalEnergyConsumption(Live(), &mj), "nvmlDeviceGetTotalEnergyConsumption", PciBusId);
        return mj / 1000.0;
    }

    /// <summary>Power draw in watts, as NVML reports it (on recent cards an average over a short window).</summary>
    public double PowerWatts()
    {
        uint mw;
        Nvml.Check(Nvml.nvmlDeviceGetPowerUsage(Live(), &mw), "nvmlDeviceGetPowerUsage", PciBusId);
        return mw / 1000.0;
    }

    /// <summary>The power limit the card enforces now, in watts.</summary>
    public double PowerLimitWatts()
    {
        uint mw;
        Nvml.Check(Nvml.nvmlDeviceGetEnforcedPowerLimit(Live(), &mw), "nvmlDeviceGetEnforcedPowerLimit", PciBusId);
        return mw / 1000.0;
    }

    /// <summary>The SM clock now, in MHz.</summary>
    public int SmClockMhz()
    {
        uint mhz;
        Nvml.Check(Nvml.nvmlDeviceGetClockInfo(Live(), Nvml.ClockSm, &mhz), "nvmlDeviceGetClockInfo", PciBusId);
        return (int)mhz;
    }

    /// <summary>The GPU die's temperature, in degrees Celsius.</summary>
    public int TemperatureCelsius()
    {
        uint c;
        Nvml.Check(Nvml.nvmlDeviceGetTemperature(Live(), Nvml.TemperatureGpu, &c), "nvmlDeviceGetTemperature", PciBusId);
        return (int)c;
    }

    /// <summary>
    /// How often the energy counter moves: polls it for <paramref name="window"/> and returns the mean time between
    /// changes in milliseconds (the window's length when it did not move, which an idle card may show). An energy
    /// figure over an interval is good to about one such step.
    /// </summary>
    public double CounterStepMilliseconds(TimeSpan window)
    {
        var clock = Stopwatch.StartNew();
        double last = EnergyJoules();
        int changes = 0;
        double firstChange = 0, lastChange = 0;
        while (clock.Elapsed < window)
        {
            double e = EnergyJoules();
            if (e == last) continue;
            double t = clock.Elapsed.TotalMilliseconds;
            if (changes == 0) firstChange = t;
            lastChange = t;
            changes++;
            last = e;
        }
        return changes < 2 ? window.TotalMilliseconds : (lastChange - firstChange) / (changes - 1);
    }

    private IntPtr Live()
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        return _device;
    }

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) Nvml.nvmlShutdown();
    }
}

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

    /// <summary>
    /// The mean power of <paramref name="unit"/> run back to back, read at the energy counter's own steps: NVML
    /// advances the counter only every so often (about 100 ms on an H200), so the energy of one short job read around
    /// it is off by up to a step's worth of power. Here a thread polls the counter (every millisecond) and notes when
    /// it moves, while this one runs <paramref name="unit"/> (which must finish its work, synchronising with the device,
    /// before it returns) first for <paramref name="warm"/>, to reach a steady draw, then for at least
    /// <paramref name="measure"/> and two more counter steps. The power is the energy between the first and the last
    /// step inside the measured span over their distance; the unit's energy is that power times its mean duration.
    /// </summary>
    public SteadyPower MeasureSteady(Action unit, TimeSpan warm, TimeSpan measure) => MeasureSteady(EnergyJoules, unit, warm, measure, PciBusId);

    /// <summary><see cref="MeasureSteady(Action, TimeSpan, TimeSpan)"/> over any energy counter (joules, read by
    /// <paramref name="energy"/>); <paramref name="name"/> names it in errors.</summary>
    public static SteadyPower MeasureSteady(Func<double> energy, Action unit, TimeSpan warm, TimeSpan measure, string name = "the card")
    {
        ArgumentNullException.ThrowIfNull(energy);
        ArgumentNullException.ThrowIfNull(unit);
        var clock = Stopwatch.StartNew();
        var steps = new List<(double Ms, double Joules)>();
        int stop = 0;
        Exception? pollFailure = null;
        var poller = new Thread(() =>
        {
            try
            {
                double last = energy();
                while (Volatile.Read(ref stop) == 0)
                {
                    double e = energy();
                    if (e != last)
                    {
                        double t = clock.Elapsed.TotalMilliseconds;
                        lock (steps) steps.Add((t, e));
                        last = e;
                    }
                    Thread.Sleep(1);
                }
            }
            catch (Exception e) { Volatile.Write(ref pollFailure, e); }
        }) { IsBackground = true, Name = "power meter" };
        poller.Start();
        try
        {
            while (clock.Elapsed < warm) unit();
            double t0 = clock.Elapsed.TotalMilliseconds;
            int units = 0;
            int StepsSince(double t) { lock (steps) return steps.Count(x => x.Ms > t); }
            while (clock.Elapsed.TotalMilliseconds - t0 < measure.TotalMilliseconds || StepsSince(t0) < 2)
            {
                if (Volatile.Read(ref pollFailure) is not null) break;
                if (clock.Elapsed.TotalMilliseconds - t0 > measure.TotalMilliseconds + 10_000)
                    throw new InvalidOperationException($"the energy counter of {name} did not move in 10 s of work");
                unit();
                units++;
            }
            double t1 = clock.Elapsed.TotalMilliseconds;
            Volatile.Write(ref stop, 1);
            poller.Join();
            if (pollFailure is not null) throw new InvalidOperationException($"reading the energy counter of {name} failed", pollFailure);
            var inside = steps.Where(x => x.Ms > t0 && x.Ms < t1).ToList();
            if (inside.Count < 2) throw new InvalidOperationException($"the energy counter of {name} moved {inside.Count} times in {t1 - t0:F0} ms of work");
            var (first, last) = (inside[0], inside[^1]);
            double seconds = (last.Ms - first.Ms) / 1000;
            return new SteadyPower((last.Joules - first.Joules) / seconds, (t1 - t0) / 1000 / units, units, seconds);
        }
        finally
        {
            Volatile.Write(ref stop, 1);
            poller.Join();
        }
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

/// <summary>What <see cref="PowerMeter.MeasureSteady"/> found: the mean power over whole counter steps, the mean
/// duration of one unit of work, how many units ran in the measured span, and the seconds between the counter steps
/// the power was read across.</summary>
public readonly record struct SteadyPower(double Watts, double SecondsPerUnit, int Units, double Seconds)
{
    /// <summary>Energy of one unit: the power times its duration, in joules.</summary>
    public double JoulesPerUnit => Watts * SecondsPerUnit;
}

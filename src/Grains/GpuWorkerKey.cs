using System.Globalization;
using Orleans.Runtime;

namespace Actors.Grains;

/// <summary>Keys of <see cref="Abstractions.IGpuWorkerGrain"/>: "&lt;silo address&gt;/&lt;device ordinal&gt;".</summary>
public static class GpuWorkerKey
{
    public static string For(SiloAddress silo, int deviceOrdinal)
    {
        ArgumentNullException.ThrowIfNull(silo);
        ArgumentOutOfRangeException.ThrowIfNegative(deviceOrdinal);
        return string.Create(CultureInfo.InvariantCulture, $"{silo.ToParsableString()}/{deviceOrdinal}");
    }

    /// <summary>Splits a key; throws ArgumentException naming the key when it is malformed.</summary>
    public static (string Silo, int DeviceOrdinal) Parse(string key)
    {
        var slash = key.LastIndexOf('/');
        if (slash <= 0 || !int.TryParse(key.AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var ordinal))
            throw new ArgumentException($"GPU worker key '{key}' is not '<silo address>/<device ordinal>'", nameof(key));
        return (key[..slash], ordinal);
    }
}

namespace Actors.Kernels.Cpu;

internal static class Shapes
{
    public static void Check(bool ok, string argument, string expected)
    {
        if (!ok) throw new ArgumentException($"span '{argument}' is shorter than {expected}", argument);
    }

    public static void NonNegative(int value, string argument)
    {
        if (value < 0) throw new ArgumentOutOfRangeException(argument, value, $"'{argument}' must not be negative");
    }
}

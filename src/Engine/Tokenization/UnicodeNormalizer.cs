using System.Globalization;
using System.Text;

namespace Actors.Engine.Tokenization;

/// <summary>
/// Unicode normalization forms NFC, NFD, NFKC and NFKD (UAX #15), in managed code with tables generated from the
/// Unicode Character Database (<see cref="UnicodeVersion"/>). The engine runs with InvariantGlobalization, where
/// <see cref="string.Normalize()"/> returns its input unchanged, so tokenizers with an NFC normalizer (Qwen2) need this.
/// </summary>
internal static partial class UnicodeNormalizer
{
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private sealed class Tables
    {
        public readonly Dictionary<int, byte> CombiningClass = new();
        public readonly Dictionary<int, int[]> Canonical = new();
        public readonly Dictionary<int, int[]> Compatibility = new();
        public readonly Dictionary<long, int> Compose = new();
    }

    private static readonly Lazy<Tables> Data = new(Build);

    private static Tables Build()
    {
        var t = new Tables();
        foreach (var (cp, values) in Parse(CombiningClassData)) t.CombiningClass[cp] = (byte)values[0];
        foreach (var (cp, values) in Parse(CanonicalData)) t.Canonical[cp] = values;
        foreach (var (cp, values) in Parse(CompatibilityData)) t.Compatibility[cp] = values;
        var excluded = new HashSet<int>(CompositionExclusionData.Split(';', StringSplitOptions.RemoveEmptyEntries)
            .Select(h => int.Parse(h, NumberStyles.HexNumber, CultureInfo.InvariantCulture)));
        foreach (var (cp, seq) in t.Canonical)
            if (seq.Length == 2 && !excluded.Contains(cp)) t.Compose[Key(seq[0], seq[1])] = cp;
        return t;
    }

    private static IEnumerable<(int, int[])> Parse(string data)
    {
        foreach (var entry in data.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            int colon = entry.IndexOf(':');
            int cp = int.Parse(entry.AsSpan(0, colon), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            int[] values = entry[(colon + 1)..].Split(' ')
                .Select(h => int.Parse(h, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToArray();
            yield return (cp, values);
        }
    }

    private static long Key(int first, int second) => ((long)first << 21) | (uint)second;

    public static string Normalize(string text, NormalizationForm form)
    {
        bool compose = form is NormalizationForm.FormC or NormalizationForm.FormKC;
        bool compat = form is NormalizationForm.FormKC or NormalizationForm.FormKD;
        if (IsStable(text, compose, compat)) return text;

        var tables = Data.Value;
        var buffer = new List<int>(text.Length + 8);
        foreach (var rune in text.EnumerateRunes()) Decompose(rune.Value, compat, tables, buffer);
        ReorderCanonically(buffer, tables);
        if (compose) ComposeCanonically(buffer, tables);

        var sb = new StringBuilder(buffer.Count + 4);
        foreach (int cp in buffer) sb.Append(new Rune(cp).ToString());
        return sb.ToString();
    }

    // Below U+0300 nothing decomposes canonically, has a non-zero combining class or composes with what follows
    // (checked when the tables were generated), so such text is already NFC; ASCII is stable under every form.
    private static bool IsStable(string text, bool compose, bool compat)
    {
        char limit = compose && !compat ? '\u0300' : '\u0080';
        foreach (char c in text)
            if (c >= limit) return false;
        return true;
    }

    private static void Decompose(int cp, bool compat, Tables t, List<int> output)
    {
        int s = cp - SBase;
        if (s is >= 0 and < SCount)
        {
            output.Add(LBase + s / NCount);
            output.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0) output.Add(TBase + s % TCount);
            return;
        }
        if (t.Canonical.TryGetValue(cp, out var canonical) || (compat && t.Compatibility.TryGetValue(cp, out canonical)))
        {
            foreach (int d in canonical) Decompose(d, compat, t, output);
            return;
        }
        output.Add(cp);
    }

    private static int Ccc(int cp, Tables t) => t.CombiningClass.TryGetValue(cp, out byte c) ? c : 0;

    // Stable sort of every run of non-starters by combining class.
    private static void ReorderCanonically(List<int> buffer, Tables t)
    {
        for (int i = 1; i < buffer.Count; i++)
        {
            int cc = Ccc(buffer[i], t);
            if (cc == 0) continue;
            int j = i;
            while (j > 0 && Ccc(buffer[j - 1], t) > cc)
            {
                (buffer[j - 1], buffer[j]) = (buffer[j], buffer[j - 1]);
                j--;
            }
        }
    }

    // Canonical composition: each character joins the last starter unless a character between them blocks it.
    private static void ComposeCanonically(List<int> buffer, Tables t)
    {
        var output = new List<int>(buffer.Count);
        int starter = -1;
        int lastClass = 0;
        foreach (int cp in buffer)
        {
            int cc = Ccc(cp, t);
            if (starter >= 0)
            {
                bool adjacent = output.Count - 1 == starter;
                bool unblocked = adjacent || (lastClass != 0 && lastClass < cc);
                if (unblocked && TryCompose(output[starter], cp, t, out int composed))
                {
                    output[starter] = composed;
                    continue;
                }
            }
            if (cc == 0)
            {
                starter = output.Count;
                lastClass = 0;
            }
            else lastClass = cc;
            output.Add(cp);
        }
        buffer.Clear();
        buffer.AddRange(output);
    }

    private static bool TryCompose(int first, int second, Tables t, out int composed)
    {
        int l = first - LBase, v = second - VBase;
        if (l is >= 0 and < LCount && v is >= 0 and < VCount)
        {
            composed = SBase + (l * VCount + v) * TCount;
            return true;
        }
        int s = first - SBase, tIndex = second - TBase;
        if (s is >= 0 and < SCount && s % TCount == 0 && tIndex is > 0 and < TCount)
        {
            composed = first + tIndex;
            return true;
        }
        return t.Compose.TryGetValue(Key(first, second), out composed);
    }
}

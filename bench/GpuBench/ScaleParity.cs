using System.Buffers.Binary;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Actors.Engine.Cuda;
using Actors.Engine.Model;
using Actors.Engine.Runtime;
using Actors.Kernels.Cuda;

/// <summary>
/// Engine half of the at-scale parity check (issue 3, item 4); tools/reference/scale_parity.py is the transformers half
/// and wrote, per RoPE variant, the config, the tokens and transformers' reference (see its docstring for the files).
/// The CUDA runner prefills all T tokens teacher-forced in chunks (the later chunks attend over the cached prefix, as
/// chunked prefill does in serving) with every row's logits asked for; per chunk the (rows, vocab) logits come to the
/// host, where every row's argmax (lowest index on ties) is taken and the sampled rows are kept.
/// Judged: worst row relative error (max |ours − ref| / max |ref| over a row) over the sampled rows ≤ 2e-2 and argmax
/// agreement ≥ 99% of all positions, against transformers in f32 when that reference exists, else transformers in bf16;
/// printed beside transformers' own bf16 error against f32 (the yardstick), and the agreement over "decisive" positions
/// (reference top-1 − top-2 margin larger than twice the largest |diff| seen), where a flip cannot be a rounding tie.
/// Usage: actors-gpubench --scale-parity --model DIR --variant DIR [--out result.json] [--chunk 2048] [--device 0]
/// </summary>
internal static class ScaleParity
{
    private const double MaxRelativeError = 2e-2;
    private const double MinArgmaxAgreement = 0.99;

    public static int Run(string[] args)
    {
        var total = Stopwatch.StartNew();
        string modelDir = Arg(args, "--model") ?? throw new ArgumentException("--model DIR is required");
        string variantDir = Arg(args, "--variant") ?? throw new ArgumentException("--variant DIR is required");
        string? outPath = Arg(args, "--out");
        int chunk = int.Parse(Arg(args, "--chunk") ?? "2048", CultureInfo.InvariantCulture);
        int ordinal = int.Parse(Arg(args, "--device") ?? "0", CultureInfo.InvariantCulture);
        var result = new JsonObject { ["variant"] = Path.GetFileName(Path.TrimEndingDirectorySeparator(variantDir)), ["chunk"] = chunk };
        var errors = new JsonObject();
        result["errors"] = errors;
        int rc = 1;
        try
        {
            rc = Check(modelDir, variantDir, chunk, ordinal, result, total);
        }
        catch (Exception e)
        {
            errors["engine"] = $"{e.GetType().Name}: {e.Message}";
            Log(total, $"FAILED {e.GetType().Name}: {e.Message}");
            Console.Error.WriteLine(e);
        }
        result["total_s"] = total.Elapsed.TotalSeconds;
        if (outPath != null)
        {
            try
            {
                if (Path.GetDirectoryName(Path.GetFullPath(outPath)) is { } dir) Directory.CreateDirectory(dir);
                File.WriteAllText(outPath, result.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
                Log(total, $"wrote {outPath}");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Log(total, $"could not write {outPath}: {e.Message}");
                rc = 1;
            }
        }
        return rc;
    }

    private static int Check(string modelDir, string variantDir, int chunk, int ordinal, JsonObject result, Stopwatch total)
    {
        var refJson = JsonNode.Parse(File.ReadAllText(Path.Combine(variantDir, "ref.json")))!.AsObject();
        int T = refJson["tokens"]!.GetValue<int>();
        int V = refJson["vocab"]!.GetValue<int>();
        var tokens = ReadInts(Path.Combine(variantDir, "tokens.i32"), T);
        var sample = ReadInts(Path.Combine(variantDir, refJson["sample_file"]!.GetValue<string>()), -1);
        int S = sample.Length;
        // References: bf16 always (the engine's own precision in transformers), f32 when it fitted.
        var refs = new List<(string Name, float[] Rows, int[] Argmax, float[] Margin)>();
        foreach (string kind in new[] { "f32", "bf16" })
        {
            if (refJson[kind] is not JsonObject files) continue;
            refs.Add((kind,
                ReadFloats(Path.Combine(variantDir, files["logits"]!.GetValue<string>()), (long)S * V),
                ReadInts(Path.Combine(variantDir, files["argmax"]!.GetValue<string>()), T),
                ReadFloats(Path.Combine(variantDir, files["margin"]!.GetValue<string>()), T)));
        }
        if (refs.Count == 0) throw new InvalidDataException($"{variantDir}/ref.json: no reference (bf16 or f32) was written: {refJson["errors"]?.ToJsonString()}");
        result["tokens"] = T;
        result["vocab"] = V;
        result["sample_rows"] = S;
        result["rope_parameters"] = refJson["rope_parameters"]?.DeepClone();
        result["references"] = new JsonArray(refs.Select(r => (JsonNode)r.Name).ToArray());

        // The yardstick first (no device needed): transformers bf16 against transformers f32, same rows and positions.
        var comparisons = new JsonObject();
        result["comparisons"] = comparisons;
        string header = $"{"",-22} {"worst rel",10} {"median rel",10} {"max |diff|",10} {"argmax agree",13} {"decisive agree",22}";
        if (refs.Count == 2)
        {
            var y = Compare(refs[1].Rows, refs[0].Rows, refs[1].Argmax, refs[0].Argmax, refs[0].Margin, S, V, T);
            comparisons["yardstick_transformers_bf16_vs_f32"] = y.Json;
            Console.WriteLine(header);
            Console.WriteLine($"{"yardstick: HF bf16/f32",-22} {y.Worst,10:E3} {y.Median,10:E3} {y.MaxAbs,10:E3} {y.Agree,13:P3} {y.DecisiveAgree,12:P3} of {y.DecisiveCount,7}");
        }

        if (!CudaDevice.TryOpen(ordinal, out var device, out var reason))
            throw new InvalidOperationException($"no usable CUDA device: {reason}");
        result["device"] = device!.ToString();
        var config = ModelConfig.Load(Path.Combine(variantDir, "config.json"));
        result["model"] = $"{config.ModelType}: hidden {config.HiddenSize}, intermediate {config.IntermediateSize}, {config.NumLayers} layers, {config.NumHeads}/{config.NumKvHeads} heads, vocab {config.VocabSize}, rope {config.RopeScaling?.Type ?? "default"}";
        if (config.VocabSize != V) throw new InvalidDataException($"{variantDir}/config.json: vocab_size {config.VocabSize}, ref.json says {V}");
        const int PageSize = 16;
        int pages = (T + PageSize - 1) / PageSize + 1;
        var options = new EngineOptions
        {
            Backend = Backend.Cuda, PageSize = PageSize, KvPages = pages, MaxBatchTokens = chunk, PrefillChunkTokens = chunk,
            MaxSequences = 1, ContextLength = T, EnablePrefixCaching = false,
        };
        var sw = Stopwatch.StartNew();
        CudaModelRunner runner;
        using (var source = SafeTensorsModel.Open(modelDir))
            runner = CudaModelRunner.Create(device, config, source, options, T);  // owns the device from here on
        using var ownedRunner = runner;
        result["load_s"] = sw.Elapsed.TotalSeconds;
        Log(total, $"{runner.Description}; weights loaded in {sw.Elapsed.TotalSeconds:F1} s");

        var table = Enumerable.Range(0, pages).ToArray();
        var argmax = new int[T];
        var ours = new float[(long)S * V];  // sampled rows, in sample order
        var sampleIndex = new Dictionary<int, int>();
        for (int i = 0; i < S; i++) sampleIndex[sample[i]] = i;
        long nonFinite = 0;
        double forwardS = 0, hostS = 0;
        sw.Restart();
        for (int s = 0; s < T; s += chunk)
        {
            int n = Math.Min(chunk, T - s);
            var t = Stopwatch.StartNew();
            // (n, V) row-major f32 widened from the device's bf16 logits
            var logits = runner.Forward([new ForwardChunk(tokens.AsMemory(s, n), s, table, T, LogitsRows.All)]);
            forwardS += t.Elapsed.TotalSeconds;
            t.Restart();
            long bad = 0;
            Parallel.For(0, n, () => 0L, (r, state, local) =>
            {
                var row = logits.AsSpan((int)((long)r * V), V);
                int best = 0;
                for (int j = 1; j < V; j++) if (row[j] > row[best]) best = j;
                argmax[s + r] = best;
                foreach (float x in row) if (!float.IsFinite(x)) { local++; break; }
                if (sampleIndex.TryGetValue(s + r, out int k)) row.CopyTo(ours.AsSpan((int)((long)k * V), V));
                return local;
            }, local => Interlocked.Add(ref bad, local));
            nonFinite += bad;
            hostS += t.Elapsed.TotalSeconds;
        }
        result["prefill_with_all_logits_s"] = forwardS;
        result["host_argmax_s"] = hostS;
        result["rows_with_non_finite_logits"] = nonFinite;
        Log(total, $"prefill of {T} tokens in chunks of {chunk} with all logits rows: {forwardS:F2} s on the runner (logits copied back), host argmax {hostS:F2} s; rows with non-finite logits: {nonFinite}");

        // Against each reference: sampled-row errors, argmax agreement over every position, decisive agreement.
        bool pass = nonFinite == 0;
        Console.WriteLine(header.Replace(new string(' ', 22) + " ", $"{"engine vs",-22} ", StringComparison.Ordinal));
        var judged = refs[0];  // f32 when present
        foreach (var r in refs)
        {
            var c = Compare(ours, r.Rows, argmax, r.Argmax, r.Margin, S, V, T);
            comparisons[$"engine_vs_transformers_{r.Name}"] = c.Json;
            Console.WriteLine($"{"transformers " + r.Name,-22} {c.Worst,10:E3} {c.Median,10:E3} {c.MaxAbs,10:E3} {c.Agree,13:P3} {c.DecisiveAgree,12:P3} of {c.DecisiveCount,7}");
            if (r.Name == judged.Name)
            {
                bool ok = c.Worst <= MaxRelativeError && c.Agree >= MinArgmaxAgreement;
                result["judged_against"] = $"transformers {r.Name}";
                result["relative_error_ok"] = c.Worst <= MaxRelativeError;
                result["argmax_agreement_ok"] = c.Agree >= MinArgmaxAgreement;
                pass &= ok;
            }
        }
        result["pass"] = pass;
        Console.WriteLine($"{result["variant"]}: {(pass ? "PASS" : "FAIL")} against transformers {judged.Name} (relative error ≤ {MaxRelativeError:0.###}, argmax agreement ≥ {MinArgmaxAgreement:P0})");
        return pass ? 0 : 1;
    }

    private sealed record Comparison(double Worst, double Median, double MaxAbs, double Agree, double DecisiveAgree, int DecisiveCount, JsonObject Json);

    /// <summary>
    /// <paramref name="rows"/> and <paramref name="refRows"/>: (S, V) row-major; argmaxes and margin: (T).
    /// Decisive positions: reference margin &gt; 2 × the largest |diff| over the sampled rows — there a flip needs an
    /// error larger than any seen, so agreement there should be 100% unless unsampled rows are much worse.
    /// </summary>
    private static Comparison Compare(float[] rows, float[] refRows, int[] argmax, int[] refArgmax, float[] refMargin, int S, int V, int T)
    {
        var rel = new double[S];
        double maxAbs = 0;
        int worstRow = 0;
        for (int i = 0; i < S; i++)
        {
            var a = rows.AsSpan((int)((long)i * V), V);
            var b = refRows.AsSpan((int)((long)i * V), V);
            double d = 0, m = 0;
            for (int j = 0; j < V; j++)
            {
                d = Math.Max(d, Math.Abs((double)a[j] - b[j]));
                m = Math.Max(m, Math.Abs((double)b[j]));
            }
            if (double.IsNaN(d)) d = double.PositiveInfinity;
            rel[i] = m > 0 ? d / m : d;
            if (rel[i] > rel[worstRow]) worstRow = i;
            maxAbs = Math.Max(maxAbs, d);
        }
        var sorted = rel.OrderBy(x => x).ToArray();
        int agree = 0, decisive = 0, decisiveAgree = 0;
        var firstDisagreements = new JsonArray();
        for (int p = 0; p < T; p++)
        {
            bool same = argmax[p] == refArgmax[p];
            if (same) agree++;
            else if (firstDisagreements.Count < 10) firstDisagreements.Add((JsonNode)$"{p}: {argmax[p]} vs {refArgmax[p]} (ref margin {refMargin[p]:G3})");
            if (refMargin[p] > 2 * maxAbs)
            {
                decisive++;
                if (same) decisiveAgree++;
            }
        }
        double worst = sorted.Length > 0 ? sorted[^1] : double.NaN, median = sorted.Length > 0 ? sorted[sorted.Length / 2] : double.NaN;
        double agreeFrac = (double)agree / T, decisiveFrac = decisive > 0 ? (double)decisiveAgree / decisive : double.NaN;
        var json = new JsonObject
        {
            ["worst_relative_error"] = worst, ["worst_row_sample_index"] = worstRow, ["median_relative_error"] = median,
            ["max_abs_diff"] = maxAbs, ["argmax_agreement"] = agreeFrac, ["argmax_disagreements"] = T - agree,
            ["decisive_margin"] = 2 * maxAbs, ["decisive_positions"] = decisive,
            ["decisive_agreement"] = double.IsNaN(decisiveFrac) ? null : decisiveFrac,
            ["first_disagreements"] = firstDisagreements,
        };
        return new Comparison(worst, median, maxAbs, agreeFrac, decisiveFrac, decisive, json);
    }

    private static int[] ReadInts(string path, int expected)
    {
        var bytes = File.ReadAllBytes(path);
        if (bytes.Length % 4 != 0 || (expected >= 0 && bytes.Length != 4L * expected))
            throw new InvalidDataException($"{path}: {bytes.Length} bytes, expected {(expected >= 0 ? 4L * expected : "a multiple of 4")} (int32 little-endian)");
        var v = new int[bytes.Length / 4];
        for (int i = 0; i < v.Length; i++) v[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan(4 * i));
        return v;
    }

    private static float[] ReadFloats(string path, long expected)
    {
        using var f = File.OpenRead(path);
        if (f.Length != 4 * expected)
            throw new InvalidDataException($"{path}: {f.Length} bytes, expected {4 * expected} (f32 little-endian)");
        var v = new float[expected];
        f.ReadExactly(System.Runtime.InteropServices.MemoryMarshal.AsBytes(v.AsSpan()));
        return v;
    }

    private static void Log(Stopwatch total, string message) => Console.WriteLine($"[{total.Elapsed.TotalSeconds,7:F1} s] {message}");

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }
}

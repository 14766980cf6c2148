using Actors.Engine.Model;

namespace Actors.Engine.Tests.Model;

public class RopeFrequenciesTests
{
    static ModelConfig Config(int headDim, double theta = 10000, RopeScaling? scaling = null, int maxPos = 64) => new()
    {
        ModelType = "llama",
        Family = ModelFamily.Llama,
        HiddenSize = headDim * 4,
        IntermediateSize = 8,
        NumLayers = 1,
        NumHeads = 4,
        NumKvHeads = 2,
        HeadDim = headDim,
        VocabSize = 16,
        RmsNormEps = 1e-5f,
        RopeTheta = theta,
        MaxPositionEmbeddings = maxPos,
        RopeScaling = scaling,
    };

    [Fact]
    public void Default_hand_checked()
    {
        // dim 8, base 10000: exponents 0, 1/4, 1/2, 3/4 => base powers 1, 10, 100, 1000 exactly
        var (inv, scale) = RopeFrequencies.Compute(Config(8), 10);
        Assert.Equal([1f, 0.1f, 0.01f, 0.001f], inv);
        Assert.Equal(1f, scale);
    }

    [Fact]
    public void Default_matches_the_formula_for_a_real_size()
    {
        var (inv, _) = RopeFrequencies.Compute(Config(128, 500000), 1);
        Assert.Equal(64, inv.Length);
        for (int k = 0; k < 64; k++)
        {
            double expected = 1.0 / Math.Pow(500000, 2.0 * k / 128);
            Assert.True(Math.Abs(inv[k] - expected) <= 2e-7 * expected, $"k={k}: {inv[k]} vs {expected}");
        }
    }

    [Fact]
    public void Linear_divides_by_factor_hand_checked()
    {
        var (inv, scale) = RopeFrequencies.Compute(Config(8, scaling: new RopeScaling("linear", 4.0)), 1000);
        Assert.Equal([0.25f, 0.025f, 0.0025f, 0.00025f], inv);
        Assert.Equal(1f, scale);
    }

    [Fact]
    public void Dynamic_equals_default_up_to_max_positions_and_stretches_beyond()
    {
        var def = RopeFrequencies.Compute(Config(16, maxPos: 64), 1).InvFreq;
        var cfg = Config(16, scaling: new RopeScaling("dynamic", 2.0), maxPos: 64);
        Assert.Equal(def, RopeFrequencies.Compute(cfg, 1).InvFreq);
        Assert.Equal(def, RopeFrequencies.Compute(cfg, 64).InvFreq);

        var at100 = RopeFrequencies.Compute(cfg, 100).InvFreq;
        var at200 = RopeFrequencies.Compute(cfg, 200).InvFreq;
        Assert.Equal(1f, at100[0]); // base ** 0
        for (int k = 1; k < def.Length; k++)
        {
            Assert.True(at100[k] < def[k]);
            Assert.True(at200[k] < at100[k]);
        }
        // base' = base * ((factor * seq / max) - (factor - 1)) ** (dim / (dim - 2)) = 10000 * 2.125 ** (16/14)
        double b = 10000 * Math.Pow(2.0 * 100 / 64 - 1, 16.0 / 14);
        for (int k = 0; k < def.Length; k++)
        {
            double expected = 1.0 / Math.Pow(b, 2.0 * k / 16);
            Assert.True(Math.Abs(at100[k] - expected) <= 1e-6 * expected, $"k={k}");
        }
        Assert.Equal(1f, RopeFrequencies.Compute(cfg, 100).AttentionScaling);
    }

    [Fact]
    public void Yarn_keeps_high_frequencies_scales_low_ones_and_sets_attention_factor()
    {
        // dim 64, base 10000, original context 4096: correction range is [floor(10.47), ceil(22.5)] = [10, 23]
        var cfg = Config(64, scaling: new RopeScaling("yarn", 4.0, OriginalMaxPositionEmbeddings: 4096), maxPos: 16384);
        var def = RopeFrequencies.Compute(Config(64, maxPos: 16384), 1).InvFreq;
        var (inv, scale) = RopeFrequencies.Compute(cfg, 1);
        for (int k = 0; k <= 10; k++) Assert.Equal(def[k], inv[k]);
        for (int k = 23; k < 32; k++)
            Assert.True(Math.Abs(inv[k] - def[k] / 4.0) <= 1e-6 * def[k], $"k={k}");
        for (int k = 11; k < 23; k++)
        {
            Assert.True(inv[k] < def[k] && inv[k] > def[k] / 4, $"k={k} should be interpolated");
            Assert.True(inv[k] / def[k] < inv[k - 1] / def[k - 1], "the ramp decreases monotonically");
        }
        Assert.Equal((float)(0.1 * Math.Log(4) + 1), scale);
    }

    [Fact]
    public void Yarn_attention_factor_variants()
    {
        RopeScaling Y(double? af = null, double? m = null, double? mad = null) =>
            new("yarn", 4.0, OriginalMaxPositionEmbeddings: 16, AttentionFactor: af, MScale: m, MScaleAllDim: mad);
        Assert.Equal(1.25f, RopeFrequencies.Compute(Config(16, scaling: Y(af: 1.25)), 1).AttentionScaling);
        Assert.Equal(1f, RopeFrequencies.Compute(Config(16, scaling: Y(m: 0.707, mad: 0.707)), 1).AttentionScaling);
        float expected = (float)((0.1 * 1.0 * Math.Log(4) + 1) / (0.1 * 0.5 * Math.Log(4) + 1));
        Assert.Equal(expected, RopeFrequencies.Compute(Config(16, scaling: Y(m: 1.0, mad: 0.5)), 1).AttentionScaling);
        // mscale_all_dim 0 is "unset": plain get_mscale(factor)
        Assert.Equal((float)(0.1 * Math.Log(4) + 1), RopeFrequencies.Compute(Config(16, scaling: Y(m: 1.0, mad: 0)), 1).AttentionScaling);
        // factor <= 1: no scaling
        Assert.Equal(1f, RopeFrequencies.Compute(Config(16, scaling: new RopeScaling("yarn", 1.0, OriginalMaxPositionEmbeddings: 16)), 1).AttentionScaling);
    }

    [Fact]
    public void Yarn_truncate_false_uses_the_fractional_range()
    {
        var truncated = RopeFrequencies.Compute(Config(64, scaling: new RopeScaling("yarn", 4.0, OriginalMaxPositionEmbeddings: 4096), maxPos: 16384), 1).InvFreq;
        var exact = RopeFrequencies.Compute(Config(64, scaling: new RopeScaling("yarn", 4.0, OriginalMaxPositionEmbeddings: 4096, Truncate: false), maxPos: 16384), 1).InvFreq;
        // The ramp starts at 10.47 instead of 10, so dim 11 is interpolated less (closer to the original)
        Assert.True(exact[11] > truncated[11]);
        Assert.Equal(truncated[5], exact[5]);
    }

    [Fact]
    public void Llama3_keeps_high_frequencies_scales_low_ones_and_smooths_between()
    {
        var scaling = new RopeScaling("llama3", 8.0, OriginalMaxPositionEmbeddings: 64, LowFreqFactor: 1.0, HighFreqFactor: 4.0);
        var def = RopeFrequencies.Compute(Config(64, 500000), 1).InvFreq;
        var (inv, scale) = RopeFrequencies.Compute(Config(64, 500000, scaling, maxPos: 512), 1);
        Assert.Equal(1f, scale);
        int high = 0, low = 0, medium = 0;
        for (int k = 0; k < 32; k++)
        {
            double wavelen = 2 * Math.PI / def[k];
            if (wavelen < 64 / 4.0) { Assert.Equal(def[k], inv[k]); high++; }
            else if (wavelen > 64 / 1.0) { Assert.Equal(def[k] / 8f, inv[k]); low++; }
            else
            {
                Assert.True(inv[k] <= def[k] && inv[k] >= def[k] / 8, $"k={k}");
                // smooth = (old_context / wavelen - low) / (high - low); inv = (1 - smooth) * inv / factor + smooth * inv
                double smooth = (64 / wavelen - 1.0) / 3.0;
                double expected = (1 - smooth) * def[k] / 8 + smooth * def[k];
                Assert.True(Math.Abs(inv[k] - expected) <= 1e-6 * def[k], $"k={k}");
                medium++;
            }
        }
        Assert.True(high > 0 && low > 0 && medium > 0, $"high {high}, low {low}, medium {medium}");
    }

    [Fact]
    public void CosSin_tables_hand_checked()
    {
        float[] inv = [1f, 0.1f];
        int[] positions = [0, 3, 100];
        var cos = new float[6];
        var sin = new float[6];
        RopeFrequencies.CosSin(inv, 1f, positions, cos, sin);
        Assert.Equal([1f, 1f], cos[..2]);
        Assert.Equal([0f, 0f], sin[..2]);
        Assert.Equal((float)Math.Cos(3), cos[2]);
        Assert.Equal((float)Math.Sin(3), sin[2]);
        Assert.Equal((float)Math.Cos(3 * 0.1f), cos[3]);
        Assert.Equal((float)Math.Sin(100 * 0.1f), sin[5]);

        RopeFrequencies.CosSin(inv, 1.5f, positions, cos, sin);
        Assert.Equal(1.5f, cos[0]);
        Assert.Equal((float)Math.Cos(3) * 1.5f, cos[2]);
        Assert.Throws<ArgumentException>(() => RopeFrequencies.CosSin(inv, 1f, positions, new float[5], sin));
    }

    // Bit patterns produced by PyTorch (1.13, CPU) running transformers 5's formulas from modeling_rope_utils.py
    // step by step (the dynamic case through the forward-time path, where seq_len is an int64 tensor).
    public static TheoryData<string, uint[], uint> TorchCases => new()
    {
        { "linear3", [0x3EAAAAAB, 0x3DD7E0CF, 0x3D088889, 0x3C2CB3D9, 0x3B5A740D, 0x3A8A297B, 0x39AEC33F, 0x38DD0F2B], 0x3F800000 },
        { "dynamic131", [0x3F800000, 0x3E842A56, 0x3D88775F, 0x3C8CE83D, 0x3B917E1A, 0x3A963A2A, 0x399B1DAC, 0x38A029E6], 0x3F800000 },
        { "yarn16", [0x3F800000, 0x3DA1E89B, 0x3CCCCCCD, 0x3C0186E3, 0x3B23D70A, 0x3A4F3E38, 0x3983126F, 0x38A5CB60], 0x3F91BE9C },
        { "llama3_16", [0x3F13786E, 0x3CC693B0, 0x3B9A08C8, 0x3A6EF74F, 0x39395D21, 0x380FC8F8, 0x36DF10C4, 0x35AD07A7], 0x3F800000 },
        { "yarn_ms", [0x3F800000, 0x3E8FF067, 0x3D72CB5F, 0x3CCCC567, 0x3C2CB3D8, 0x3B91A7F6, 0x3AF5B0D0, 0x3A4F36BC,
                      0x39AEC33E, 0x391364C4, 0x38789F1B, 0x37D1AF86, 0x3730D8EE, 0x369526DF, 0x35FB9656, 0x35542FDB], 0x3F86AA3E },
    };

    [Theory]
    [MemberData(nameof(TorchCases))]
    public void Matches_torch_bit_for_bit(string name, uint[] expectedBits, uint attentionBits)
    {
        var (cfg, seqLen) = name switch
        {
            "linear3" => (Config(16, 10000, new RopeScaling("linear", 3)), 1),
            "dynamic131" => (Config(16, 10000, new RopeScaling("dynamic", 3), maxPos: 64), 131),
            "yarn16" => (Config(16, 10000, new RopeScaling("yarn", 4, OriginalMaxPositionEmbeddings: 16)), 1),
            "llama3_16" => (Config(16, 500000, new RopeScaling("llama3", 8, OriginalMaxPositionEmbeddings: 16, LowFreqFactor: 1, HighFreqFactor: 4)), 1),
            "yarn_ms" => (Config(32, 1000000, new RopeScaling("yarn", 3, OriginalMaxPositionEmbeddings: 24, MScale: 1.0, MScaleAllDim: 0.5, BetaFast: 16)), 1),
            _ => throw new ArgumentException(name),
        };
        var (inv, att) = RopeFrequencies.Compute(cfg, seqLen);
        Assert.Equal(expectedBits, inv.Select(BitConverter.SingleToUInt32Bits).ToArray());
        Assert.Equal(attentionBits, BitConverter.SingleToUInt32Bits(att));
    }
}

using Actors.Engine.Model;

namespace Actors.Engine.Tests.Runtime;

/// <summary>
/// The test's own dense forward of a Llama-family model, as transformers' modeling_llama / qwen2 / qwen3 define it:
/// no paging, no batching, plain loops, double accumulation. Judges the engine.
/// </summary>
internal sealed class ReferenceForward(ModelConfig c, InMemoryWeights w)
{
    /// <summary>Logits (T, vocab) for every position of the tokens.</summary>
    public double[][] Logits(IReadOnlyList<int> tokens)
    {
        int T = tokens.Count, H = c.HiddenSize, D = c.HeadDim, nh = c.NumHeads, nkv = c.NumKvHeads;
        var x = new double[T][];
        var emb = w.Get("model.embed_tokens.weight");
        for (int t = 0; t < T; t++) x[t] = Enumerable.Range(0, H).Select(i => (double)emb[tokens[t] * H + i]).ToArray();

        // RoPE, default type: inv_freq in float32 as torch computes it; angles position * inv_freq in float32.
        var invFreq = new float[D / 2];
        for (int i = 0; i < D / 2; i++) invFreq[i] = 1f / MathF.Pow((float)c.RopeTheta, (float)(2 * i) / D);

        for (int l = 0; l < c.NumLayers; l++)
        {
            string p = $"model.layers.{l}.";
            var hN = x.Select(r => Norm(r, w.Get(p + "input_layernorm.weight"))).ToArray();
            var q = hN.Select(r => Linear(r, p + "self_attn.q_proj", nh * D, c.AttentionBias)).ToArray();
            var k = hN.Select(r => Linear(r, p + "self_attn.k_proj", nkv * D, c.AttentionBias)).ToArray();
            var v = hN.Select(r => Linear(r, p + "self_attn.v_proj", nkv * D, c.AttentionBias)).ToArray();
            for (int t = 0; t < T; t++)
            {
                if (c.QkNorm)
                {
                    for (int hh = 0; hh < nh; hh++) NormInPlace(q[t], hh * D, D, w.Get(p + "self_attn.q_norm.weight"));
                    for (int hh = 0; hh < nkv; hh++) NormInPlace(k[t], hh * D, D, w.Get(p + "self_attn.k_norm.weight"));
                }
                for (int hh = 0; hh < nh; hh++) Rotate(q[t], hh * D, t, invFreq);
                for (int hh = 0; hh < nkv; hh++) Rotate(k[t], hh * D, t, invFreq);
            }
            var attn = new double[T][];
            int group = nh / nkv;
            for (int t = 0; t < T; t++)
            {
                attn[t] = new double[nh * D];
                for (int hh = 0; hh < nh; hh++)
                {
                    int kh = hh / group;
                    var s = new double[t + 1];
                    for (int u = 0; u <= t; u++)
                    {
                        double dot = 0;
                        for (int e = 0; e < D; e++) dot += q[t][hh * D + e] * k[u][kh * D + e];
                        s[u] = dot / Math.Sqrt(D);
                    }
                    double m = s.Max(), z = 0;
                    for (int u = 0; u <= t; u++) { s[u] = Math.Exp(s[u] - m); z += s[u]; }
                    for (int u = 0; u <= t; u++)
                        for (int e = 0; e < D; e++) attn[t][hh * D + e] += s[u] / z * v[u][kh * D + e];
                }
            }
            for (int t = 0; t < T; t++)
            {
                var o = Linear(attn[t], p + "self_attn.o_proj", H, c.OutputBias);
                for (int i = 0; i < H; i++) x[t][i] += o[i];
                var h2 = Norm(x[t], w.Get(p + "post_attention_layernorm.weight"));
                var g = Linear(h2, p + "mlp.gate_proj", c.IntermediateSize, false);
                var u = Linear(h2, p + "mlp.up_proj", c.IntermediateSize, false);
                var a = g.Select((gi, i) => gi / (1 + Math.Exp(-gi)) * u[i]).ToArray();
                var down = Linear(a, p + "mlp.down_proj", H, false);
                for (int i = 0; i < H; i++) x[t][i] += down[i];
            }
        }
        string head = c.TieWordEmbeddings ? "model.embed_tokens" : "lm_head";
        return x.Select(r => Linear(Norm(r, w.Get("model.norm.weight")), head, c.VocabSize, false)).ToArray();
    }

    /// <summary>Greedy continuation by full recomputation each step; stops after maxNew tokens or at a stop id.</summary>
    public List<int> Greedy(IReadOnlyList<int> prompt, int maxNew, IReadOnlySet<int>? stop = null)
    {
        var seq = prompt.ToList();
        var output = new List<int>();
        for (int i = 0; i < maxNew; i++)
        {
            var last = Logits(seq)[^1];
            int best = 0;
            for (int j = 1; j < last.Length; j++) if (last[j] > last[best]) best = j;
            if (stop?.Contains(best) == true) break;
            output.Add(best);
            seq.Add(best);
        }
        return output;
    }

    private double[] Linear(double[] x, string name, int outDim, bool bias)
    {
        var W = w.Get(name + ".weight");
        var b = bias ? w.Get(name + ".bias") : null;
        int inDim = x.Length;
        var y = new double[outDim];
        for (int j = 0; j < outDim; j++)
        {
            double acc = b?[j] ?? 0;
            for (int i = 0; i < inDim; i++) acc += W[j * inDim + i] * x[i];
            y[j] = acc;
        }
        return y;
    }

    private double[] Norm(double[] x, float[] weight)
    {
        var y = (double[])x.Clone();
        NormInPlace(y, 0, y.Length, weight);
        return y;
    }

    private void NormInPlace(double[] x, int offset, int n, float[] weight)
    {
        double ss = 0;
        for (int i = 0; i < n; i++) ss += x[offset + i] * x[offset + i];
        double inv = 1 / Math.Sqrt(ss / n + c.RmsNormEps);
        for (int i = 0; i < n; i++) x[offset + i] = x[offset + i] * inv * weight[i];
    }

    private static void Rotate(double[] x, int offset, int position, float[] invFreq)
    {
        int half = invFreq.Length;
        for (int i = 0; i < half; i++)
        {
            double angle = (float)(position * invFreq[i]);
            double cos = Math.Cos(angle), sin = Math.Sin(angle);
            double a = x[offset + i], b = x[offset + i + half];
            x[offset + i] = a * cos - b * sin;
            x[offset + i + half] = b * cos + a * sin;
        }
    }
}

using Actors.Kernels.Cuda.Kernels;
using static Actors.Kernels.Cuda.Kernels.SamplingKernels;

namespace Actors.Engine.Tests.Sampling;

/// <summary>
/// sample_rows (sampling.cu) simulated on the host with its block's thread structure: keys split into per-thread
/// descending ranges, tokens into per-thread index segments, the exclusive scans, the atomicMin / atomicMax choices of
/// the cut key and the picking thread. Only the order of floating-point sums differs from the device (sequential over
/// threads here, a tree there). It exists because this machine has no GPU: the partitioning logic, which the
/// sequential <see cref="SamplingKernels.Reference"/> does not have, is checked against the Sampler here.
/// Keep it in step with sampling.cu.
/// </summary>
internal static class SamplingKernelSimulation
{
    public static int Run(ReadOnlySpan<ushort> row, SampleRow q, int nt)
    {
        int n = row.Length, per = Bins / nt, seg = (n + nt - 1) / nt;
        int Hi(int t) => Bins - 1 - t * per;
        int I0(int t) => Math.Min(n, t * seg);
        int I1(int t) => Math.Min(n, I0(t) + seg);
        if (q.Temperature <= 0f || q.TopK == 1)
        {
            int gk = -1, gi = int.MaxValue;
            for (int t = 0; t < nt; t++)
            {
                int bk = -1, bi = int.MaxValue;
                for (int i = t; i < n; i += nt) { int k = OrderKey(row[i]); if (k > bk) { bk = k; bi = i; } }
                if (bk > gk || (bk == gk && bi < gi)) { gk = bk; gi = bi; }
            }
            return gi == int.MaxValue ? 0 : gi;
        }
        var hist = new int[Bins];
        foreach (var b in row) { int k = OrderKey(b); if (k != 0) hist[k]++; }
        int sKth = 1, sMax = -1, sCut = int.MaxValue, sCutKeep = 0, sPick = int.MaxValue, sLast = -1;
        double sCutMass = 0;

        var cnt = new int[nt];
        for (int t = 0; t < nt; t++)
        {
            int top = -1;
            for (int j = 0; j < per; j++) { int c = hist[Hi(t) - j]; if (c > 0 && top < 0) top = Hi(t) - j; cnt[t] += c; }
            if (top >= 0) sMax = Math.Max(sMax, top);
        }
        var above = Exclusive(cnt);
        bool topK = q.TopK > 0 && q.TopK < n;
        for (int t = 0; t < nt; t++)
            if (topK && above[t] < q.TopK && above[t] + cnt[t] >= q.TopK)
            {
                int acc = above[t];
                for (int j = 0; j < per; j++) { acc += hist[Hi(t) - j]; if (acc >= q.TopK) { sKth = Hi(t) - j; break; } }
            }
        int kth = sKth, maxKey = sMax;
        if (maxKey < 0) return 0;
        double tt = q.Temperature, m = KeyValue(maxKey) / tt;
        double E(int k) => Math.Exp(KeyValue(k) / tt - m);
        double sum = 0;
        for (int t = 0; t < nt; t++)
        {
            double e = 0;
            for (int j = 0; j < per; j++) { int k = Hi(t) - j, c = hist[k]; if (c > 0 && k >= kth) e += (double)c * E(k); }
            sum += e;
        }
        bool topP = q.TopP < 1f;
        double pp = q.TopP, kept = 1;
        if (topP)
        {
            var mass = new double[nt];
            for (int t = 0; t < nt; t++)
                for (int j = 0; j < per; j++) { int k = Hi(t) - j, c = hist[k]; if (c > 0 && k >= kth) mass[t] += (double)c * (E(k) / sum); }
            var a0 = Exclusive(mass);
            var cand = new int[nt];
            var candMass = new double[nt];
            for (int t = 0; t < nt; t++)
            {
                double a = a0[t];
                cand[t] = -1;
                for (int j = 0; j < per; j++)
                {
                    int k = Hi(t) - j, c = hist[k];
                    if (c == 0 || k < kth) continue;
                    if (a < pp) { cand[t] = k; candMass[t] = a; }
                    a += (double)c * (E(k) / sum);
                }
                if (cand[t] >= 0) sCut = Math.Min(sCut, cand[t]);
            }
            for (int t = 0; t < nt; t++)
                if (cand[t] >= 0 && cand[t] == sCut)
                {
                    int c = hist[cand[t]];
                    double pr = E(cand[t]) / sum, before = candMass[t];
                    int keep = 0;
                    if (pr > 0) while (keep < c && before < pp) { before += pr; keep++; }
                    else keep = c;
                    sCutKeep = keep;
                    sCutMass = before;
                }
            kept = sCutMass;
        }
        int cut = topP ? sCut : 0, cutKeep = sCutKeep;
        var rank = new int[nt];
        if (topP)
        {
            var mine = new int[nt];
            for (int t = 0; t < nt; t++) for (int i = I0(t); i < I1(t); i++) mine[t] += OrderKey(row[i]) == cut ? 1 : 0;
            rank = Exclusive(mine);
        }
        var segSum = new double[nt];
        var lastKept = new int[nt];
        double Pr(int k) { double pr = E(k) / sum; return topP ? pr / kept : pr; }
        for (int t = 0; t < nt; t++)
        {
            lastKept[t] = -1;
            int rk = rank[t];
            for (int i = I0(t); i < I1(t); i++)
            {
                int k = OrderKey(row[i]);
                if (k == 0 || k < kth || k < cut) continue;
                if (k == cut && rk++ >= cutKeep) continue;
                double pr = Pr(k);
                if (pr > 0) { segSum[t] += pr; lastKept[t] = i; }
            }
        }
        var before0 = Exclusive(segSum);
        for (int t = 0; t < nt; t++)
            if (lastKept[t] >= 0)
            {
                sLast = Math.Max(sLast, lastKept[t]);
                if (q.Uniform < before0[t] + segSum[t]) sPick = Math.Min(sPick, t);
            }
        if (sPick != int.MaxValue)
        {
            int t = sPick, rk = rank[t], pick = -1;
            double cum = before0[t];
            for (int i = I0(t); i < I1(t); i++)
            {
                int k = OrderKey(row[i]);
                if (k == 0 || k < kth || k < cut) continue;
                if (k == cut && rk++ >= cutKeep) continue;
                double pr = Pr(k);
                if (pr <= 0) continue;
                cum += pr;
                if (q.Uniform < cum) { pick = i; break; }
            }
            return pick >= 0 ? pick : lastKept[t];
        }
        return sLast >= 0 ? sLast : 0;
    }

    private static int[] Exclusive(int[] v)
    {
        var r = new int[v.Length];
        for (int i = 1; i < v.Length; i++) r[i] = r[i - 1] + v[i - 1];
        return r;
    }

    private static double[] Exclusive(double[] v)
    {
        var r = new double[v.Length];
        for (int i = 1; i < v.Length; i++) r[i] = r[i - 1] + v[i - 1];
        return r;
    }
}

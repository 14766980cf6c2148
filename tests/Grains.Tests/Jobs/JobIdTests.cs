using Actors.Abstractions;

namespace Actors.Grains.Tests.Jobs;

public sealed class JobIdTests
{
    private const string Hash = "sha256:00ff";

    [Fact]
    public void Equal_inputs_give_equal_ids_and_every_option_changes_the_id()
    {
        var o = new SummaryOptions();
        var id = SummarizationJobs.JobId(Hash, "/m", o);
        Assert.Equal(id, SummarizationJobs.JobId(Hash, "/m", new SummaryOptions()));
        Assert.StartsWith(SummarizationJobs.IdPrefix, id);
        Assert.Equal(SummarizationJobs.IdPrefix.Length + 32, id.Length);

        string[] variants =
        [
            SummarizationJobs.JobId("sha256:00fe", "/m", o),
            SummarizationJobs.JobId(Hash, "/n", o),
            SummarizationJobs.JobId(Hash, "/m", o with { TargetWords = 201 }),
            SummarizationJobs.JobId(Hash, "/m", o with { Style = SummaryStyle.Bullets }),
            SummarizationJobs.JobId(Hash, "/m", o with { Language = "French" }),
            SummarizationJobs.JobId(Hash, "/m", o with { Focus = "Who?" }),
            SummarizationJobs.JobId(Hash, "/m", o with { ChunkTokens = 1000 }),
            SummarizationJobs.JobId(Hash, "/m", o with { OverlapTokens = 0 }),
            // A language of "-" must not collide with no language (fields are marked, not just joined).
            SummarizationJobs.JobId(Hash, "/m", o with { Language = "-" }),
        ];
        Assert.Equal(variants.Length + 1, variants.Append(id).Distinct().Count());
    }

    [Fact]
    public void Generations_round_trip_and_bad_ids_are_named()
    {
        var id = SummarizationJobs.JobId(Hash, "/m", new SummaryOptions());
        Assert.Equal((id, 0), SummarizationJobs.ParseJobId(id));
        var g3 = SummarizationJobs.JobId(Hash, "/m", new SummaryOptions(), 3);
        Assert.Equal(id + "-g3", g3);
        Assert.Equal((id, 3), SummarizationJobs.ParseJobId(g3));

        foreach (var bad in new[] { "job-1", id[..^1], id.ToUpperInvariant().Replace("SUM-", "sum-"), id + "-g0", id + "-gx", id + "x" })
        {
            var e = Assert.Throws<ArgumentException>(() => SummarizationJobs.ParseJobId(bad));
            Assert.Contains(bad, e.Message);
        }
    }

    [Fact]
    public void Text_hash_is_sha256_of_utf8()
    {
        // SHA-256("abc"), FIPS 180-2 test vector.
        Assert.Equal("sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", SummarizationJobs.HashText("abc"));
        Assert.Equal(SummarizationJobs.HashText("héllo"), new SubmitJob("/m", new SummaryOptions(), Text: "héllo").ContentHash);
    }

    [Fact]
    public void Bad_requests_name_the_field()
    {
        Assert.Contains("ModelRef", Assert.Throws<ArgumentException>(() => new SubmitJob(" ", new SummaryOptions(), Text: "x").Validate()).Message);
        Assert.Contains("exactly one", Assert.Throws<ArgumentException>(() => new SubmitJob("/m", new SummaryOptions()).Validate()).Message);
        Assert.Contains("exactly one", Assert.Throws<ArgumentException>(() =>
            new SubmitJob("/m", new SummaryOptions(), Text: "x", Document: new DocumentRef("h", "b")).Validate()).Message);
        Assert.Contains("'doc.txt' is empty", Assert.Throws<ArgumentException>(() => new SubmitJob("/m", new SummaryOptions(), Text: " \n", Source: "doc.txt").Validate()).Message);
        Assert.Contains("TargetWords", Assert.Throws<ArgumentException>(() => new SubmitJob("/m", new SummaryOptions(TargetWords: 0), Text: "x").Validate()).Message);
        Assert.Contains("TextBlob", Assert.Throws<ArgumentException>(() => new SubmitJob("/m", new SummaryOptions(), Document: new DocumentRef("h", "")).Validate()).Message);
    }
}

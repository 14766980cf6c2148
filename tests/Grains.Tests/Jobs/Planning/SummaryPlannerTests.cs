using System.Diagnostics;
using Actors.Abstractions;
using Actors.Engine;
using Actors.Grains.Jobs.Planning;

namespace Actors.Grains.Tests.Jobs.Planning;

public class SummaryPlannerTests(Qwen2Variants models) : IClassFixture<Qwen2Variants>
{
    private static int PromptTokens(ITextGenerator model, SummaryPlan plan, PlanStep step, string doc, IReadOnlyList<string>? inputs = null) =>
        model.EncodeChat(SummaryPrompts.ForStep(plan, step, doc, inputs), addGenerationPrompt: true).Count;

    [Fact]
    public void Rope_scaling_takes_the_document_directly_and_the_unscaled_model_maps_and_reduces()
    {
        Assert.Equal(512, models.Plain.ContextLength);
        Assert.Equal(2048, models.Scaled.ContextLength); // linear ×4 of max_position_embeddings 512
        string doc = SyntheticText.Document(350, seed: 5); // the fixture tokenizer has few merges: ~3.8 tokens a word
        var options = new SummaryOptions(TargetWords: 50);
        int docTokens = models.Plain.Encode(doc).Count;
        Assert.InRange(docTokens, 600, 1700); // longer than the plain context, well inside the scaled one

        var scaled = SummaryPlanner.Plan(models.Scaled, doc, options);
        Assert.Equal(PlanKind.Direct, scaled.Kind);
        var direct = Assert.Single(scaled.Steps);
        Assert.Equal(("direct", PlanStepKind.Direct, 75), (direct.Id, direct.Kind, direct.MaxNewTokens)); // 50 words × 1.5
        int directPrompt = PromptTokens(models.Scaled, scaled, direct, doc);
        Assert.Equal(directPrompt, scaled.DirectPromptTokens);
        Assert.True(directPrompt + direct.MaxNewTokens <= 2048);
        Assert.InRange(scaled.DocumentTokens, docTokens - 2, docTokens + 2);
        Assert.Equal(1, scaled.EstimatedTotalSteps);

        var plain = SummaryPlanner.Plan(models.Plain, doc, options);
        Assert.Equal(PlanKind.MapReduce, plain.Kind);
        Assert.Equal(directPrompt, plain.DirectPromptTokens); // same tokenizer and template: the same direct prompt did not fit
        Assert.True(plain.Chunks.Length >= 2);
        Assert.Equal(plain.Chunks.Length, plain.Steps.Length);
        for (int i = 0; i < plain.Steps.Length; i++)
        {
            var step = plain.Steps[i];
            Assert.Equal((PlanStep.MapId(i), PlanStepKind.Map, 0, i), (step.Id, step.Kind, step.Level, step.ChunkIndex));
            Assert.True(PromptTokens(models.Plain, plain, step, doc) + step.MaxNewTokens <= 512, $"{step.Id} does not fit");
        }
        DocumentChunkerTests.AssertValid(doc, plain.Chunks, t => models.Plain.Encode(t).Count, plain.ChunkTokens, plain.OverlapTokens);
    }

    [Fact]
    public void Direct_is_chosen_exactly_when_prompt_plus_output_fits_the_context()
    {
        string doc = SyntheticText.Document(300, seed: 9);
        var options = new SummaryOptions(TargetWords: 100); // 150 output tokens
        // Word-token model: the direct prompt is the template's 2 × 3 + 2 tokens plus instructions plus the document.
        var probe = new WordTokenModel(1_000_000);
        int prompt = probe.EncodeChat(SummaryPrompts.Direct(doc, options), true).Count;
        Assert.Equal(2 * WordTokenModel.PerMessage + WordTokenModel.GenerationPrompt
            + WordTokenModel.Count(SummaryPrompts.Direct(doc, options)[0].Content) + WordTokenModel.Count(doc), prompt);

        Assert.Equal(PlanKind.Direct, SummaryPlanner.Plan(new WordTokenModel(prompt + 150), doc, options).Kind);
        var tight = SummaryPlanner.Plan(new WordTokenModel(prompt + 149), doc, options);
        Assert.Equal(PlanKind.MapReduce, tight.Kind);
        Assert.Equal(prompt, tight.DirectPromptTokens);
        Assert.Equal(WordTokenModel.Count(doc), tight.DocumentTokens);
    }

    public static TheoryData<int, SummaryStyle, string?, string?> TreeCases => new()
    {
        { 50, SummaryStyle.Abstract, null, null },
        { 30, SummaryStyle.Bullets, "French", "What limits the batch size?" },
        { 60, SummaryStyle.Abstract, "German", null },
    };

    [Theory]
    [MemberData(nameof(TreeCases))]
    public void The_reduce_tree_terminates_and_every_prompt_fits(int targetWords, SummaryStyle style, string? language, string? focus)
    {
        var model = models.Plain; // 512 tokens: many maps, several reduce levels
        string doc = SyntheticText.Document(6000, seed: 13);
        var options = new SummaryOptions(targetWords, style, language, focus);
        var plan = SummaryPlanner.Plan(model, doc, options);
        Assert.Equal(PlanKind.MapReduce, plan.Kind);

        // Every summary as long as its budget allows (the deepest tree): the decoded first MaxNewTokens tokens of text.
        var filler = model.Encode(SyntheticText.Document(2000, seed: 99));
        string SummaryOf(int maxTokens)
        {
            int n = maxTokens;
            string text;
            do text = model.Decode(filler.Take(n--).ToArray()).Trim(); while (model.Encode(text).Count > maxTokens);
            return text;
        }

        var summaries = new Dictionary<string, string>();
        foreach (var map in plan.Steps)
        {
            Assert.True(PromptTokens(model, plan, map, doc) + map.MaxNewTokens <= model.ContextLength, $"{map.Id} does not fit");
            summaries[map.Id] = SummaryOf(map.MaxNewTokens);
        }

        var consumed = new HashSet<string>();
        var inputs = plan.Steps.Select(s => new StepOutput(s.Id, model.Encode(summaries[s.Id]).Count)).ToList();
        int steps = plan.Steps.Length, reduceLevels = 0;
        for (int level = 1; ; level++)
        {
            Assert.True(level < 20, "the reduce tree does not terminate");
            var next = SummaryPlanner.NextLevel(plan, level, inputs);
            Assert.Equal(next, SummaryPlanner.NextLevel(plan, level, inputs.ToArray()), PlanLevelComparer.Instance); // deterministic
            steps += next.Steps.Length;
            foreach (var step in next.Steps)
            {
                Assert.Equal(level, step.Level);
                foreach (var id in step.Inputs) Assert.True(consumed.Add(id), $"{id} is read twice");
                var texts = step.Inputs.Select(id => summaries[id]).ToArray();
                int prompt = PromptTokens(model, plan, step, doc, texts);
                Assert.True(prompt + step.MaxNewTokens <= model.ContextLength,
                    $"{step.Id}: {prompt}-token prompt + {step.MaxNewTokens} output > {model.ContextLength}");
                summaries[step.Id] = SummaryOf(step.MaxNewTokens);
            }
            if (next.IsFinal)
            {
                Assert.Equal("final", next.Steps[0].Id);
                Assert.Equal(SummaryPlanner.FinalOutputTokens(options), next.Steps[0].MaxNewTokens);
                Assert.Empty(next.NextInputs);
                break;
            }
            reduceLevels++;
            Assert.True(next.NextInputs.Length <= (inputs.Count + 1) / 2, $"level {level} went from {inputs.Count} to {next.NextInputs.Length} summaries");
            Assert.All(next.Steps, s => Assert.Equal(PlanStep.ReduceId(level, Array.IndexOf(next.Steps, s)), s.Id));
            inputs = [.. next.NextInputs.Select(id => new StepOutput(id, model.Encode(summaries[id]).Count))];
        }
        Assert.True(reduceLevels >= 2, $"only {reduceLevels} reduce levels: the test should exercise a deeper tree");
        // Everything produced is read by exactly one later step (the final reads the last ones).
        Assert.Equal(summaries.Keys.Where(id => id != PlanStep.FinalId).Order(), consumed.Order());
        Assert.Equal(plan.EstimatedTotalSteps, steps);
    }

    [Fact]
    public void Next_level_groups_greedily_in_order_and_carries_a_summary_left_alone()
    {
        // Budgets by hand: a reduce prompt holds 100 tokens of summaries, the final one 50, 2 tokens between two.
        var plan = Handmade(reduceBudget: 100, finalBudget: 50, separator: 2, summaryTokens: 40);
        var inputs = new[] { 30, 30, 30, 40, 10, 40, 40 }.Select((t, i) => new StepOutput(PlanStep.MapId(i), t)).ToArray();

        var l1 = SummaryPlanner.NextLevel(plan, 1, inputs);
        // 30+2+30+2+30 = 94 (a fourth would be 136); 40+2+10+2+40 = 94; the last 40 has no partner.
        Assert.Equal(2, l1.Steps.Length);
        Assert.Equal(["map-0000", "map-0001", "map-0002"], l1.Steps[0].Inputs);
        Assert.Equal(["map-0003", "map-0004", "map-0005"], l1.Steps[1].Inputs);
        Assert.Equal(["reduce-1-0000", "reduce-1-0001", "map-0006"], l1.NextInputs);
        Assert.All(l1.Steps, s => Assert.Equal((PlanStepKind.Reduce, 1, 40, -1), (s.Kind, s.Level, s.MaxNewTokens, s.ChunkIndex)));
        Assert.False(l1.IsFinal);

        // 40+2+40+2+40 = 124 > 50: one more reduce of all three (124 > 100, so two and one carried).
        var l2 = SummaryPlanner.NextLevel(plan, 2, l1.NextInputs.Select(id => new StepOutput(id, 40)).ToArray());
        Assert.Equal(["reduce-1-0000", "reduce-1-0001"], Assert.Single(l2.Steps).Inputs);
        Assert.Equal(["reduce-2-0000", "map-0006"], l2.NextInputs);

        // 20 + 2 + 28 = 50 fits the final prompt exactly.
        var l3 = SummaryPlanner.NextLevel(plan, 3, [new StepOutput("reduce-2-0000", 20), new StepOutput("map-0006", 28)]);
        Assert.True(l3.IsFinal);
        Assert.Equal((PlanStep.FinalId, 3, 300), (l3.Steps[0].Id, l3.Steps[0].Level, l3.Steps[0].MaxNewTokens));
        Assert.Equal(["reduce-2-0000", "map-0006"], l3.Steps[0].Inputs);
        Assert.False(SummaryPlanner.NextLevel(plan, 3, [new StepOutput("reduce-2-0000", 21), new StepOutput("map-0006", 28)]).IsFinal);

        // A single summary always goes to the final step.
        Assert.True(SummaryPlanner.NextLevel(plan, 1, [new StepOutput("map-0000", 40)]).IsFinal);
    }

    [Fact]
    public void Next_level_refuses_summaries_longer_than_their_budget_and_bad_levels()
    {
        var plan = Handmade(reduceBudget: 100, finalBudget: 50, separator: 2, summaryTokens: 40);
        var e = Assert.Throws<ArgumentException>(() => SummaryPlanner.NextLevel(plan, 1, [new StepOutput("map-0000", 10), new StepOutput("map-0001", 41)]));
        Assert.Contains("inputs[1] (map-0001) has 41 tokens", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => SummaryPlanner.NextLevel(plan, 0, [new StepOutput("map-0000", 10)]));
        Assert.Throws<ArgumentException>(() => SummaryPlanner.NextLevel(plan, 1, []));
        Assert.Throws<ArgumentException>(() => SummaryPlanner.NextLevel(plan with { Kind = PlanKind.Direct }, 1, [new StepOutput("map-0000", 10)]));
    }

    [Fact]
    public void Bad_options_name_the_field()
    {
        string doc = SyntheticText.Document(2000, seed: 1);
        var model = models.Plain;

        var big = Assert.Throws<ArgumentException>(() => SummaryPlanner.Plan(model, doc, new SummaryOptions(TargetWords: 50, ChunkTokens: 600)));
        Assert.Contains("SummaryOptions.ChunkTokens 600", big.Message);
        Assert.Contains("512", big.Message);

        var words = Assert.Throws<ArgumentException>(() => SummaryPlanner.Plan(model, doc, new SummaryOptions(TargetWords: 400)));
        Assert.Contains("SummaryOptions.TargetWords 400", words.Message);

        // Chunks sized by the planner (a few hundred tokens here) cannot take 250 tokens of overlap.
        var overlap = Assert.Throws<ArgumentException>(() => SummaryPlanner.Plan(model, doc, new SummaryOptions(TargetWords: 50, OverlapTokens: 250)));
        Assert.Contains("SummaryOptions.OverlapTokens 250", overlap.Message);

        Assert.Contains("SummaryOptions.TargetWords", Assert.Throws<ArgumentException>(() => SummaryPlanner.Plan(model, doc, new SummaryOptions(TargetWords: 0))).Message);
        Assert.Equal("document", Assert.Throws<ArgumentException>(() => SummaryPlanner.Plan(model, " \n\n ", new SummaryOptions())).ParamName);
    }

    [Fact]
    public void Chunk_tokens_from_the_options_are_used_when_they_fit()
    {
        string doc = SyntheticText.Document(2000, seed: 2);
        var model = models.Plain;
        var plan = SummaryPlanner.Plan(model, doc, new SummaryOptions(TargetWords: 50, ChunkTokens: 150, OverlapTokens: 20));
        Assert.Equal((150, 20), (plan.ChunkTokens, plan.OverlapTokens));
        DocumentChunkerTests.AssertValid(doc, plan.Chunks, t => model.Encode(t).Count, 150, 20);
        var auto = SummaryPlanner.Plan(model, doc, new SummaryOptions(TargetWords: 50, OverlapTokens: 20));
        Assert.True(auto.ChunkTokens > 150 && auto.Chunks.Length < plan.Chunks.Length);
    }

    [Fact]
    public void A_200K_token_document_is_planned_in_reasonable_time()
    {
        var model = models.Plain;
        string doc = SyntheticText.Document(150_000, seed: 17);
        var sw = Stopwatch.StartNew();
        var plan = SummaryPlanner.Plan(model, doc, new SummaryOptions(TargetWords: 50));
        sw.Stop();
        Assert.True(plan.DocumentTokens > 200_000, $"only {plan.DocumentTokens} tokens");
        Assert.Equal(PlanKind.MapReduce, plan.Kind);
        Assert.True(plan.Chunks.Length > 200_000 / plan.ChunkTokens);
        Assert.True(plan.EstimatedTotalSteps > plan.Steps.Length + 1);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"planning took {sw.Elapsed}");
    }

    [Fact]
    public void A_plan_round_trips_through_the_orleans_serializer()
    {
        var plan = SummaryPlanner.Plan(models.Plain, SyntheticText.Document(1500, seed: 4), new SummaryOptions(80, SummaryStyle.Bullets, "Spanish", "Why?"));
        var services = new Microsoft.Extensions.DependencyInjection.ServiceCollection();
        Orleans.Serialization.ServiceCollectionExtensions.AddSerializer(services);
        using var provider = Microsoft.Extensions.DependencyInjection.ServiceCollectionContainerBuilderExtensions.BuildServiceProvider(services);
        var serializer = (Orleans.Serialization.Serializer)provider.GetService(typeof(Orleans.Serialization.Serializer))!;
        var copy = serializer.Deserialize<SummaryPlan>(serializer.SerializeToArray(plan)) ?? throw new InvalidOperationException("no plan came back");
        Assert.Equal(plan.Chunks, copy.Chunks);
        Assert.Equal(plan.Steps.Select(s => (s.Id, s.Kind, s.Level, s.ChunkIndex, string.Join(',', s.Inputs), s.MaxNewTokens)),
            copy.Steps.Select(s => (s.Id, s.Kind, s.Level, s.ChunkIndex, string.Join(',', s.Inputs), s.MaxNewTokens)));
        Assert.Equal(plan with { Chunks = [], Steps = [] }, copy with { Chunks = [], Steps = [] });
    }

    private static SummaryPlan Handmade(int reduceBudget, int finalBudget, int separator, int summaryTokens) =>
        new(PlanKind.MapReduce, "handmade", 1000, new SummaryOptions(), DocumentTokens: 5000, DirectPromptTokens: 5100,
            ChunkTokens: 500, OverlapTokens: 0, Chunks: [], Steps: [],
            MapMaxNewTokens: summaryTokens, ReduceMaxNewTokens: summaryTokens, FinalMaxNewTokens: 300,
            ReduceInputBudget: reduceBudget, FinalInputBudget: finalBudget, SeparatorTokens: separator,
            TokensPerWord: 1.5, EstimatedTotalSteps: 0);

    private sealed class PlanLevelComparer : IEqualityComparer<PlanLevel>
    {
        public static readonly PlanLevelComparer Instance = new();

        public bool Equals(PlanLevel? x, PlanLevel? y) => x is not null && y is not null && Key(x) == Key(y);

        public int GetHashCode(PlanLevel obj) => Key(obj).GetHashCode(StringComparison.Ordinal);

        private static string Key(PlanLevel l) =>
            $"{l.Level}|{string.Join(';', l.Steps.Select(s => $"{s.Id}:{s.Kind}:{s.MaxNewTokens}:{string.Join(',', s.Inputs)}"))}|{string.Join(',', l.NextInputs)}";
    }
}

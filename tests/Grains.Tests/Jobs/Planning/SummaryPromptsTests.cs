using Actors.Abstractions;
using Actors.Engine.Chat;
using Actors.Grains.Jobs.Planning;

namespace Actors.Grains.Tests.Jobs.Planning;

public class SummaryPromptsTests(Qwen2Variants models) : IClassFixture<Qwen2Variants>
{
    private const string Doc = "# Title\n\nFirst paragraph. It has two sentences.\n\nSecond paragraph, with  double  spaces and a trailing newline.\n";

    [Fact]
    public void Instructions_come_first_and_the_document_is_the_user_message_verbatim()
    {
        var m = SummaryPrompts.Direct(Doc, new SummaryOptions());
        Assert.Equal(["system", "user"], m.Select(x => x.Role));
        Assert.Equal(Doc, m[1].Content);
        Assert.DoesNotContain(Doc, m[0].Content);

        var map = SummaryPrompts.Map("chunk text ", new SummaryOptions(), 40);
        Assert.Equal(("user", "chunk text "), (map[1].Role, map[1].Content));
        Assert.Contains("at most 40 words", map[0].Content);
    }

    [Fact]
    public void Options_shape_the_direct_and_final_instructions()
    {
        var plain = SummaryPrompts.Direct(Doc, new SummaryOptions(TargetWords: 120))[0].Content;
        Assert.Contains("about 120 words", plain);
        Assert.Contains("prose", plain);
        Assert.DoesNotContain("bullet", plain);
        Assert.Contains("language of the document", plain);

        var o = new SummaryOptions(TargetWords: 80, Style: SummaryStyle.Bullets, Language: "Japanese", Focus: "Who pays for the cache?");
        foreach (var system in new[] { SummaryPrompts.Direct(Doc, o)[0].Content, SummaryPrompts.Final(["a", "b"], o)[0].Content })
        {
            Assert.Contains("about 80 words", system);
            Assert.Contains("bullet points", system);
            Assert.Contains("in Japanese", system);
            Assert.Contains("Who pays for the cache?", system);
        }
        // Intermediate steps keep the focus but not style or output language (they are notes for the final step).
        foreach (var system in new[] { SummaryPrompts.Map("x", o, 30)[0].Content, SummaryPrompts.Reduce(["a", "b"], o, 30)[0].Content })
        {
            Assert.Contains("Who pays for the cache?", system);
            Assert.DoesNotContain("Japanese", system);
            Assert.DoesNotContain("bullet", system);
        }
        Assert.DoesNotContain("question", SummaryPrompts.Map("x", new SummaryOptions(), 30)[0].Content);
    }

    [Fact]
    public void Reduce_and_final_join_the_summaries_in_order()
    {
        var m = SummaryPrompts.Reduce([" one\n", "two", "three "], new SummaryOptions(), 50);
        Assert.Equal("one\n\ntwo\n\nthree", m[1].Content);
        Assert.Equal("one\n\ntwo", SummaryPrompts.Final(["one", "two"], new SummaryOptions())[1].Content);
    }

    [Fact]
    public void Equal_documents_render_equal_tokens_and_the_follow_up_chat_extends_the_direct_prompt()
    {
        var model = models.Scaled;
        var options = new SummaryOptions(TargetWords: 60, Focus: "What is cached?");
        var direct = model.EncodeChat(SummaryPrompts.Direct(Doc, options), addGenerationPrompt: true);
        Assert.Equal(direct, model.EncodeChat(SummaryPrompts.Direct(new string(Doc.AsSpan()), options with { }), addGenerationPrompt: true));

        // The follow-up session's tokens start with the direct prompt's, then the summary the model wrote: the
        // document's KV pages (and the summary's) are a prefix hit.
        const string summary = "The document has a title and two paragraphs.";
        var followUp = model.EncodeChat(SummaryPrompts.FollowUp(Doc, options, summary, "What is in the second paragraph?"), addGenerationPrompt: true);
        Assert.Equal(direct, followUp.Take(direct.Count));
        Assert.Equal(model.Encode(summary), followUp.Skip(direct.Count).Take(model.Encode(summary).Count));
    }

    [Fact]
    public void For_step_builds_each_kind_from_the_plan()
    {
        var model = models.Plain;
        string doc = SyntheticText.Document(800, seed: 21);
        var options = new SummaryOptions(TargetWords: 40, Focus: "Why?");
        var plan = SummaryPlanner.Plan(model, doc, options);
        Assert.Equal(PlanKind.MapReduce, plan.Kind);

        var map = plan.Steps[1];
        var mapMessages = SummaryPrompts.ForStep(plan, map, doc);
        Assert.Equal(plan.Chunks[1].TextOf(doc), mapMessages[1].Content);
        Assert.Equal(SummaryPrompts.Map(plan.Chunks[1].TextOf(doc), options, SummaryPlanner.WordsFor(plan, map)), mapMessages);

        var level = SummaryPlanner.NextLevel(plan, 1, [.. plan.Steps.Select(s => new StepOutput(s.Id, s.MaxNewTokens))]);
        var step = level.Steps[0];
        var texts = step.Inputs.Select(id => "summary of " + id).ToArray();
        var messages = SummaryPrompts.ForStep(plan, step, doc, texts);
        Assert.Equal(SummaryPrompts.Join(texts), messages[1].Content);
        var e = Assert.Throws<ArgumentException>(() => SummaryPrompts.ForStep(plan, step, doc, texts.Skip(1).ToArray()));
        Assert.Equal("inputSummaries", e.ParamName);
        Assert.Throws<ArgumentException>(() => SummaryPrompts.ForStep(plan, map with { ChunkIndex = plan.Chunks.Length }, doc));
        Assert.Throws<ArgumentException>(() => SummaryPrompts.ForStep(plan, map, doc[..10])); // another (shorter) document
    }
}

using System.Globalization;
using System.Text;
using Actors.Abstractions;
using Actors.Grains.Jobs.Planning;

namespace Actors.Grains.Tests.Jobs;

/// <summary>Synthetic documents and the answers a CharModel must give for a job's steps.</summary>
public static class JobTestData
{
    /// <summary>
    /// ASCII text of at least <paramref name="bytes"/> bytes (CharModel: one token per byte) in paragraphs of numbered
    /// sentences, so every chunk and every summary of it is unique.
    /// </summary>
    public static string Document(int bytes, string tag)
    {
        var s = new StringBuilder(bytes + 200);
        for (var i = 0; s.Length < bytes; i++)
        {
            s.Append(CultureInfo.InvariantCulture, $"Entry {i:D6} of ledger {tag} records {(i * 7919) % 10007} crates moved from bay {i % 97} to bay {(i * 31) % 89}.");
            s.Append(i % 6 == 5 ? "\n\n" : " ");
        }
        return s.ToString();
    }

    /// <summary>What a CharModel answers to one user turn, cut to <paramref name="maxNewTokens"/> (ASCII: a token per char).</summary>
    public static string Answer(string userMessage, int maxNewTokens)
    {
        var a = CharModel.ExpectedAnswer(1, userMessage);
        return a.Length <= maxNewTokens ? a : a[..maxNewTokens];
    }

    /// <summary>
    /// Checks that <paramref name="result"/> is exactly what the plan made here (same model, document and options)
    /// yields on a CharModel: every map, reduce and final step with its inputs in order, and the final summary.
    /// Returns each step's user message (what a recorded execution of it shows).
    /// </summary>
    public static Dictionary<string, string> AssertFollowsPlan(string modelDirectory, string document, SummaryOptions options, JobResult result)
    {
        var model = new CharModel(modelDirectory, new CharModelHooks());
        var plan = SummaryPlanner.Plan(model, document, options);
        var byId = result.Steps.ToDictionary(x => x.StepId);
        var users = new Dictionary<string, string>();
        var order = new List<string>();

        void Check(PlanStep step)
        {
            var inputs = step.Inputs.Length == 0 ? null : step.Inputs.Select(id => byId[id].Summary).ToArray();
            var user = SummaryPrompts.ForStep(plan, step, document, inputs)[^1].Content;
            Assert.True(byId.ContainsKey(step.Id), $"step {step.Id} of the plan is missing from the result");
            Assert.Equal(Answer(user, step.MaxNewTokens), byId[step.Id].Summary);
            users[step.Id] = user;
            order.Add(step.Id);
        }

        foreach (var step in plan.Steps) Check(step);
        var final = plan.Steps[^1].Id;
        if (plan.Kind == PlanKind.MapReduce)
        {
            IReadOnlyList<string> inputs = [.. plan.Steps.Select(x => x.Id)];
            for (var level = 1; ; level++)
            {
                var outputs = inputs.Select(id => new StepOutput(id, Math.Min(byId[id].GeneratedTokens, plan.MaxSummaryTokens))).ToArray();
                Assert.All(outputs, o => Assert.Equal(model.Encode(byId[o.StepId].Summary).Count, o.Tokens)); // a byte per token
                var next = SummaryPlanner.NextLevel(plan, level, outputs);
                foreach (var step in next.Steps) Check(step);
                if (next.IsFinal) { final = next.Steps[0].Id; break; }
                inputs = next.NextInputs;
            }
        }
        Assert.Equal(order, result.Steps.Select(x => x.StepId));
        Assert.Equal(byId[final].Summary, result.Summary);
        return users;
    }
}

using Actors.Abstractions;
using Actors.Engine;
using Actors.Engine.Chat;

namespace Actors.Grains.Jobs.Planning;

/// <summary>Planner constants; the defaults are the constants below.</summary>
public sealed record PlannerSettings
{
    public const double DefaultTokensPerWord = 1.5;
    public const int DefaultMinOutputTokens = 64;
    public const int DefaultMaxMapOutputTokens = 1024;
    public const int DefaultMapOutputContextDivisor = 16;
    public const int DefaultMaxAutoChunkTokens = 8192;
    public const int DefaultSafetyTokens = 16;

    /// <summary>Output tokens budgeted per requested word (English is about 1.3 with Llama-3's tokenizer).</summary>
    public double TokensPerWord { get; init; } = DefaultTokensPerWord;

    /// <summary>Least output budget of any step, whatever the target length.</summary>
    public int MinOutputTokens { get; init; } = DefaultMinOutputTokens;

    /// <summary>Most output tokens of one map or reduce summary.</summary>
    public int MaxMapOutputTokens { get; init; } = DefaultMaxMapOutputTokens;

    /// <summary>A map or reduce summary gets the context divided by this (then clamped to the two bounds above).</summary>
    public int MapOutputContextDivisor { get; init; } = DefaultMapOutputContextDivisor;

    /// <summary>
    /// Largest chunk the planner picks by itself: smaller chunks run in parallel on more devices and small models
    /// summarize them better. SummaryOptions.ChunkTokens may ask for more.
    /// </summary>
    public int MaxAutoChunkTokens { get; init; } = DefaultMaxAutoChunkTokens;

    /// <summary>
    /// Tokens kept free in every prompt: the chat template and the text it wraps can tokenize a token or two apart
    /// from the counts of their parts.
    /// </summary>
    public int SafetyTokens { get; init; } = DefaultSafetyTokens;

    public static PlannerSettings Default { get; } = new();

    internal void Validate()
    {
        if (!(TokensPerWord is >= 0.1 and <= 100)) throw new ArgumentException($"PlannerSettings.TokensPerWord must be in 0.1..100, got {TokensPerWord}");
        if (MinOutputTokens < 1) throw new ArgumentException($"PlannerSettings.MinOutputTokens must be >= 1, got {MinOutputTokens}");
        if (MaxMapOutputTokens < MinOutputTokens) throw new ArgumentException($"PlannerSettings.MaxMapOutputTokens must be >= MinOutputTokens ({MinOutputTokens}), got {MaxMapOutputTokens}");
        if (MapOutputContextDivisor < 1) throw new ArgumentException($"PlannerSettings.MapOutputContextDivisor must be >= 1, got {MapOutputContextDivisor}");
        if (MaxAutoChunkTokens < 64) throw new ArgumentException($"PlannerSettings.MaxAutoChunkTokens must be >= 64, got {MaxAutoChunkTokens}");
        if (SafetyTokens < 0) throw new ArgumentException($"PlannerSettings.SafetyTokens must be >= 0, got {SafetyTokens}");
    }
}

/// <summary>
/// Decides how a document is summarized on a model: directly when the direct prompt (rendered through the chat
/// template) plus the requested output fits the model's context (the RoPE-scaled effective length the engine
/// serves), else by map-reduce with chunks sized so a map prompt plus its output fits, and reduce levels formed
/// from the finished summaries' lengths (<see cref="NextLevel"/>) until one final prompt holds them all.
/// </summary>
public static class SummaryPlanner
{
    /// <summary>Smallest chunk a plan uses; a context that leaves less room is too small for map-reduce.</summary>
    public const int MinChunkTokens = 64;

    /// <summary>Smallest budget of a map or reduce summary; a context that leaves less is too small for map-reduce.</summary>
    public const int MinSummaryTokens = 16;

    /// <summary>Output budget of the direct and final steps: TargetWords × TokensPerWord, at least MinOutputTokens.</summary>
    public static int FinalOutputTokens(SummaryOptions options, PlannerSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var s = settings ?? PlannerSettings.Default;
        return Math.Max(s.MinOutputTokens, (int)Math.Ceiling(options.TargetWords * s.TokensPerWord));
    }

    /// <summary>
    /// Plans <paramref name="document"/> on <paramref name="model"/>. Throws ArgumentException naming the field when
    /// the options are invalid or cannot fit the model's context (SummaryOptions.TargetWords, ChunkTokens,
    /// OverlapTokens), or when the document is empty.
    /// </summary>
    public static SummaryPlan Plan(ITextGenerator model, string document, SummaryOptions options, PlannerSettings? settings = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(document);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var s = settings ?? PlannerSettings.Default;
        s.Validate();
        if (string.IsNullOrWhiteSpace(document))
            throw new ArgumentException("the document is empty (no text after whitespace)", nameof(document));

        int context = model.ContextLength;
        int finalTokens = FinalOutputTokens(options, s);
        int PromptTokens(IReadOnlyList<ChatMessage> messages) => model.EncodeChat(messages, addGenerationPrompt: true).Count;

        int directOverhead = PromptTokens(SummaryPrompts.Direct("", options));
        if (directOverhead + finalTokens + s.SafetyTokens > context)
            throw new ArgumentException(
                $"SummaryOptions.TargetWords {options.TargetWords} asks for about {finalTokens} output tokens; with the {directOverhead}-token prompt that does not fit the model's context of {context} tokens");

        int directPrompt = PromptTokens(SummaryPrompts.Direct(document, options));
        int documentTokens = Math.Max(1, directPrompt - directOverhead);
        if (directPrompt + finalTokens <= context)
        {
            var direct = new PlanStep(PlanStep.DirectId, PlanStepKind.Direct, 0, -1, [], finalTokens);
            return new SummaryPlan(PlanKind.Direct, model.ModelId, context, options, documentTokens, directPrompt,
                ChunkTokens: 0, OverlapTokens: 0, Chunks: [], Steps: [direct],
                MapMaxNewTokens: 0, ReduceMaxNewTokens: 0, FinalMaxNewTokens: finalTokens,
                ReduceInputBudget: 0, FinalInputBudget: 0, SeparatorTokens: 0, TokensPerWord: s.TokensPerWord,
                EstimatedTotalSteps: 1);
        }

        // Map and reduce summaries share one budget M. The tree terminates when any two summaries of M tokens fit a
        // reduce prompt, and the final step can always take one summary; shrink M until both hold.
        int separatorTokens = Math.Max(1, model.Encode(SummaryPrompts.Separator).Count) + 1; // +1: joins may split a token
        int summaryTokens = Math.Clamp(context / s.MapOutputContextDivisor, s.MinOutputTokens, s.MaxMapOutputTokens);
        int finalOverhead = PromptTokens(SummaryPrompts.Final([""], options));
        int finalBudget = context - finalOverhead - finalTokens - s.SafetyTokens;
        int reduceBudget = 0, mapOverhead = 0;
        for (int attempt = 0; attempt < 4; attempt++)
        {
            int words = SummaryPrompts.WordsFor(summaryTokens, s.TokensPerWord);
            int reduceOverhead = PromptTokens(SummaryPrompts.Reduce([""], options, words));
            mapOverhead = PromptTokens(SummaryPrompts.Map("", options, words));
            reduceBudget = context - reduceOverhead - summaryTokens - s.SafetyTokens;
            int fits = Math.Min(finalBudget, (reduceBudget - separatorTokens) / 2);
            if (summaryTokens <= fits) break;
            summaryTokens = fits; // the word count in the prompts changes with it: measure again
        }
        if (summaryTokens < MinSummaryTokens || summaryTokens > Math.Min(finalBudget, (reduceBudget - separatorTokens) / 2))
            throw new ArgumentException(
                $"SummaryOptions.TargetWords {options.TargetWords} asks for about {finalTokens} output tokens; the model's context of {context} tokens then leaves no room for the summaries a final step must read ({Math.Max(0, finalBudget)} tokens)");

        int maxChunk = Math.Min(context - mapOverhead - summaryTokens - s.SafetyTokens, int.MaxValue);
        int chunkTokens;
        if (options.ChunkTokens is { } asked)
        {
            if (asked > maxChunk)
                throw new ArgumentException(
                    $"SummaryOptions.ChunkTokens {asked} does not fit the model's context of {context} tokens: a map prompt takes {mapOverhead} tokens and its summary {summaryTokens}, leaving at most {Math.Max(0, maxChunk)} for a chunk");
            chunkTokens = asked;
        }
        else
        {
            chunkTokens = Math.Min(maxChunk, s.MaxAutoChunkTokens);
            if (chunkTokens < MinChunkTokens)
                throw new ArgumentException(
                    $"the model's context of {context} tokens is too small for map-reduce: a map prompt takes {mapOverhead} tokens and its summary {summaryTokens}, leaving {chunkTokens} for a chunk (at least {MinChunkTokens} needed)", nameof(model));
        }
        if (2 * (long)options.OverlapTokens >= chunkTokens)
            throw new ArgumentException($"SummaryOptions.OverlapTokens {options.OverlapTokens} must be below half of the chunk size {chunkTokens}");

        var chunks = DocumentChunker.ForModel(model, chunkTokens, options.OverlapTokens).Chunk(document);
        var maps = new PlanStep[chunks.Count];
        for (int i = 0; i < maps.Length; i++)
            maps[i] = new PlanStep(PlanStep.MapId(i), PlanStepKind.Map, 0, i, [], summaryTokens);

        var plan = new SummaryPlan(PlanKind.MapReduce, model.ModelId, context, options, documentTokens, directPrompt,
            chunkTokens, options.OverlapTokens, [.. chunks], maps,
            MapMaxNewTokens: summaryTokens, ReduceMaxNewTokens: summaryTokens, FinalMaxNewTokens: finalTokens,
            ReduceInputBudget: reduceBudget, FinalInputBudget: finalBudget, SeparatorTokens: separatorTokens,
            TokensPerWord: s.TokensPerWord, EstimatedTotalSteps: 0);
        return plan with { EstimatedTotalSteps = EstimateTotalSteps(plan) };
    }

    /// <summary>
    /// The next level after the summaries <paramref name="inputs"/> (in document order) are done: the final step
    /// when they all fit one final prompt, else reduce steps over consecutive groups that each fit a reduce prompt
    /// (greedy, so the result depends only on the token counts). Level 1 follows the maps; call again with level + 1
    /// and the summaries of <see cref="PlanLevel.NextInputs"/> until the level is final.
    /// <see cref="StepOutput.Tokens"/> is the number of tokens the step generated (at most its MaxNewTokens; a
    /// longer count is refused). The budgets keep SafetyTokens free for a re-encoded text that differs by a token.
    /// Plan and NextLevel are CPU-bound (Plan encodes the document about three times): run them off the grain's
    /// scheduler for long documents.
    /// </summary>
    public static PlanLevel NextLevel(SummaryPlan plan, int level, IReadOnlyList<StepOutput> inputs)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(inputs);
        if (plan.Kind != PlanKind.MapReduce)
            throw new ArgumentException($"a {plan.Kind} plan has no reduce levels", nameof(plan));
        if (level < 1) throw new ArgumentOutOfRangeException(nameof(level), level, "reduce levels start at 1 (maps are level 0)");
        if (inputs.Count == 0) throw new ArgumentException("a level needs at least one summary", nameof(inputs));
        long total = 0;
        for (int i = 0; i < inputs.Count; i++)
        {
            var x = inputs[i];
            if (string.IsNullOrEmpty(x.StepId)) throw new ArgumentException($"inputs[{i}].StepId is empty", nameof(inputs));
            if (x.Tokens < 0 || x.Tokens > plan.MaxSummaryTokens)
                throw new ArgumentException(
                    $"inputs[{i}] ({x.StepId}) has {x.Tokens} tokens; a summary of this plan has 0..{plan.MaxSummaryTokens} (its step's MaxNewTokens)", nameof(inputs));
            total += x.Tokens;
        }

        if (total + (long)(inputs.Count - 1) * plan.SeparatorTokens <= plan.FinalInputBudget)
        {
            var final = new PlanStep(PlanStep.FinalId, PlanStepKind.Final, level, -1, [.. inputs.Select(x => x.StepId)], plan.FinalMaxNewTokens);
            return new PlanLevel(level, [final], []);
        }

        var steps = new List<PlanStep>();
        var next = new List<string>();
        int start = 0;
        while (start < inputs.Count)
        {
            int end = start + 1;
            long used = inputs[start].Tokens;
            while (end < inputs.Count && used + plan.SeparatorTokens + inputs[end].Tokens <= plan.ReduceInputBudget)
                used += plan.SeparatorTokens + inputs[end++].Tokens;
            if (end - start == 1)
            {
                next.Add(inputs[start].StepId); // nothing to merge it with at this level: carried to the next one
            }
            else
            {
                string id = PlanStep.ReduceId(level, steps.Count);
                steps.Add(new PlanStep(id, PlanStepKind.Reduce, level, -1,
                    [.. inputs.Skip(start).Take(end - start).Select(x => x.StepId)], plan.ReduceMaxNewTokens));
                next.Add(id);
            }
            start = end;
        }
        if (steps.Count == 0)
            throw new InvalidOperationException(
                $"level {level}: no two of the {inputs.Count} summaries fit one reduce prompt ({plan.ReduceInputBudget} tokens); the plan's budgets are inconsistent");
        return new PlanLevel(level, [.. steps], [.. next]);
    }

    /// <summary>
    /// Steps of the whole plan if every summary used its full budget (the longest tree): the maps, each reduce
    /// level, and the final step. Progress reports it as the total until the real levels are known.
    /// </summary>
    public static int EstimateTotalSteps(SummaryPlan plan)
    {
        ArgumentNullException.ThrowIfNull(plan);
        if (plan.Kind == PlanKind.Direct) return plan.Steps.Length;
        int count = plan.Steps.Length;
        var inputs = plan.Steps.Select(st => new StepOutput(st.Id, st.MaxNewTokens)).ToList();
        for (int level = 1; ; level++)
        {
            var l = NextLevel(plan, level, inputs);
            count += l.Steps.Length;
            if (l.IsFinal) return count;
            var produced = l.Steps.ToDictionary(st => st.Id, st => st.MaxNewTokens);
            var byId = inputs.ToDictionary(x => x.StepId, x => x.Tokens);
            inputs = [.. l.NextInputs.Select(id => new StepOutput(id, produced.TryGetValue(id, out int t) ? t : byId[id]))];
        }
    }

    /// <summary>Words the prompt of <paramref name="step"/> asks for (TargetWords for direct and final steps).</summary>
    public static int WordsFor(SummaryPlan plan, PlanStep step)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(step);
        return step.Kind is PlanStepKind.Direct or PlanStepKind.Final
            ? plan.Options.TargetWords
            : SummaryPrompts.WordsFor(step.MaxNewTokens, plan.TokensPerWord);
    }
}

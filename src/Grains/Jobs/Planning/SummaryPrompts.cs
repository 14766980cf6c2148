using System.Globalization;
using System.Text;
using Actors.Abstractions;
using Actors.Engine.Chat;

namespace Actors.Grains.Jobs.Planning;

/// <summary>
/// Chat messages for each kind of step. Every prompt is [system: instructions, user: text]: the instructions come
/// first and the user message is the document, chunk or joined summaries verbatim, so equal documents with equal
/// options render to equal token prefixes (prefix-cache hits), and the direct prompt is the first turn of a follow-up
/// chat session (<see cref="FollowUp"/>). The jobs render these through the model's chat template (EncodeChat).
/// </summary>
public static class SummaryPrompts
{
    /// <summary>Put between summaries in reduce and final prompts.</summary>
    public const string Separator = "\n\n";

    /// <summary>The whole document with the user's options (a Direct step).</summary>
    public static IReadOnlyList<ChatMessage> Direct(string document, SummaryOptions options)
    {
        ArgumentNullException.ThrowIfNull(document);
        ArgumentNullException.ThrowIfNull(options);
        var s = new StringBuilder("You summarize documents. Summarize the document in the user's message ");
        Shape(s, options);
        return [new ChatMessage("system", s.ToString()), new ChatMessage("user", document)];
    }

    /// <summary>
    /// A chat session on a summarized document: the direct prompt, the summary as the assistant's answer, and the
    /// question. Its token prefix is the direct prompt's, so the document's KV pages are reused.
    /// </summary>
    public static IReadOnlyList<ChatMessage> FollowUp(string document, SummaryOptions options, string summary, string question)
    {
        ArgumentNullException.ThrowIfNull(summary);
        ArgumentNullException.ThrowIfNull(question);
        return [.. Direct(document, options), new ChatMessage("assistant", summary), new ChatMessage("user", question)];
    }

    /// <summary>
    /// One chunk of a longer document (a Map step), in at most <paramref name="maxWords"/> words. Intermediate
    /// summaries keep the document's language and plain prose; style and output language apply in the final step.
    /// </summary>
    public static IReadOnlyList<ChatMessage> Map(string chunkText, SummaryOptions options, int maxWords)
    {
        ArgumentNullException.ThrowIfNull(chunkText);
        ArgumentNullException.ThrowIfNull(options);
        var s = new StringBuilder("You summarize one part of a longer document. Write a concise summary of the text in the user's message in at most ");
        s.Append(maxWords.ToString(CultureInfo.InvariantCulture)).Append(" words. Keep names, numbers, dates, decisions and conclusions. ");
        FocusForNotes(s, options);
        s.Append("Write in the language of the text. Reply with the summary only.");
        return [new ChatMessage("system", s.ToString()), new ChatMessage("user", chunkText)];
    }

    /// <summary>Several summaries of consecutive parts merged into one of at most <paramref name="maxWords"/> words (a Reduce step).</summary>
    public static IReadOnlyList<ChatMessage> Reduce(IReadOnlyList<string> summaries, SummaryOptions options, int maxWords)
    {
        ArgumentNullException.ThrowIfNull(summaries);
        ArgumentNullException.ThrowIfNull(options);
        var s = new StringBuilder("The user's message holds summaries of consecutive parts of one document, in order, separated by blank lines. ");
        s.Append("Merge them into one concise summary of at most ").Append(maxWords.ToString(CultureInfo.InvariantCulture))
         .Append(" words that keeps their order and the key facts. ");
        FocusForNotes(s, options);
        s.Append("Write in the language of the summaries. Reply with the summary only.");
        return [new ChatMessage("system", s.ToString()), new ChatMessage("user", Join(summaries))];
    }

    /// <summary>The final summary of the whole document from the remaining summaries, with the user's options (the Final step).</summary>
    public static IReadOnlyList<ChatMessage> Final(IReadOnlyList<string> summaries, SummaryOptions options)
    {
        ArgumentNullException.ThrowIfNull(summaries);
        ArgumentNullException.ThrowIfNull(options);
        var s = new StringBuilder("The user's message holds summaries of consecutive parts of one document, in order, separated by blank lines. ");
        s.Append("From them, summarize the whole document ");
        Shape(s, options);
        return [new ChatMessage("system", s.ToString()), new ChatMessage("user", Join(summaries))];
    }

    /// <summary>
    /// The messages of <paramref name="step"/> of <paramref name="plan"/>: the document (Direct), its chunk (Map), or
    /// <paramref name="inputSummaries"/>, the summaries of the step's Inputs in order (Reduce, Final).
    /// </summary>
    public static IReadOnlyList<ChatMessage> ForStep(SummaryPlan plan, PlanStep step, string document, IReadOnlyList<string>? inputSummaries = null)
    {
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentNullException.ThrowIfNull(step);
        ArgumentNullException.ThrowIfNull(document);
        switch (step.Kind)
        {
            case PlanStepKind.Direct:
                return Direct(document, plan.Options);
            case PlanStepKind.Map:
                if ((uint)step.ChunkIndex >= (uint)plan.Chunks.Length)
                    throw new ArgumentException($"step {step.Id}: ChunkIndex {step.ChunkIndex} is not a chunk of the plan ({plan.Chunks.Length} chunks)", nameof(step));
                return Map(plan.Chunks[step.ChunkIndex].TextOf(document), plan.Options, WordsFor(step.MaxNewTokens, plan.TokensPerWord));
            case PlanStepKind.Reduce:
            case PlanStepKind.Final:
                if (inputSummaries is null || inputSummaries.Count != step.Inputs.Length)
                    throw new ArgumentException($"step {step.Id} needs {step.Inputs.Length} input summaries (one per id in Inputs), got {inputSummaries?.Count.ToString(CultureInfo.InvariantCulture) ?? "none"}", nameof(inputSummaries));
                return step.Kind == PlanStepKind.Reduce
                    ? Reduce(inputSummaries, plan.Options, WordsFor(step.MaxNewTokens, plan.TokensPerWord))
                    : Final(inputSummaries, plan.Options);
            default:
                throw new ArgumentException($"step {step.Id}: unknown kind {(int)step.Kind}", nameof(step));
        }
    }

    /// <summary>
    /// Words to ask for when the output may hold <paramref name="maxNewTokens"/> tokens: three quarters of what fits,
    /// so a model that overshoots a little still ends before it is cut off.
    /// </summary>
    public static int WordsFor(int maxNewTokens, double tokensPerWord) =>
        Math.Max(1, (int)(maxNewTokens / tokensPerWord * 0.75));

    /// <summary>Summaries joined with <see cref="Separator"/> after trimming their outer whitespace.</summary>
    public static string Join(IReadOnlyList<string> summaries) => string.Join(Separator, summaries.Select(x => x.Trim()));

    // Length, style, language and focus of a summary the user reads (direct and final steps).
    private static void Shape(StringBuilder s, SummaryOptions o)
    {
        s.Append("in about ").Append(o.TargetWords.ToString(CultureInfo.InvariantCulture)).Append(o.TargetWords == 1 ? " word" : " words");
        s.Append(o.Style == SummaryStyle.Bullets
            ? ", as a list of bullet points, one per line, each starting with \"- \". "
            : ", as flowing prose in paragraphs, without lists or headings. ");
        s.Append(o.Language is { } language
            ? $"Write the summary in {language}. "
            : "Write the summary in the language of the document. ");
        if (o.Focus is { } focus)
            s.Append("Focus on answering this question from the document, and say so if the document does not answer it: ").Append(focus).Append(' ');
        s.Append("Reply with the summary only.");
    }

    // Intermediate summaries keep what the focus question needs.
    private static void FocusForNotes(StringBuilder s, SummaryOptions o)
    {
        if (o.Focus is { } focus)
            s.Append("Keep above all what bears on this question: ").Append(focus).Append(' ');
    }
}

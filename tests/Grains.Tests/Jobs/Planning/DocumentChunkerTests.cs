using System.Diagnostics;
using System.Text;
using Actors.Grains.Jobs.Planning;

namespace Actors.Grains.Tests.Jobs.Planning;

public class DocumentChunkerTests(Qwen2Variants models) : IClassFixture<Qwen2Variants>
{
    /// <summary>Budget, order, coverage and overlap invariants every chunking must meet.</summary>
    internal static void AssertValid(string doc, IReadOnlyList<DocumentChunk> chunks, Func<string, int> count, int maxTokens, int overlapTokens)
    {
        Assert.NotEmpty(chunks);
        var covered = new bool[doc.Length];
        for (int i = 0; i < chunks.Count; i++)
        {
            var c = chunks[i];
            Assert.Equal(i, c.Index);
            string text = c.TextOf(doc);
            Assert.Equal(count(text), c.Tokens);
            Assert.True(c.Tokens <= maxTokens, $"chunk {i} has {c.Tokens} tokens, budget {maxTokens}");
            Assert.False(char.IsWhiteSpace(text[0]) || char.IsWhiteSpace(text[^1]), $"chunk {i} is not trimmed");
            Assert.InRange(c.NewStart, c.Start, c.End - 1);
            for (int k = c.Start; k < c.End; k++) covered[k] = true;
            if (i == 0)
            {
                Assert.Equal(c.Start, c.NewStart);
                continue;
            }
            var p = chunks[i - 1];
            // In order; new content starts after the previous chunk with only whitespace between.
            Assert.True(c.NewStart >= p.End, $"chunk {i} new content starts at {c.NewStart}, before the previous end {p.End}");
            Assert.True(string.IsNullOrWhiteSpace(doc[p.End..c.NewStart]), $"text between chunk {i - 1} and {i} is skipped");
            if (c.OverlapLength > 0)
            {
                // The overlap is a tail of the previous chunk, never all of its new content, and within the overlap budget.
                Assert.InRange(c.Start, p.NewStart + 1, p.End - 1);
                Assert.True(count(doc[c.Start..p.End]) <= overlapTokens + 1, $"chunk {i} overlap is {count(doc[c.Start..p.End])} tokens");
            }
        }
        for (int k = 0; k < doc.Length; k++)
            Assert.True(covered[k] || char.IsWhiteSpace(doc[k]), $"character {k} ('{doc[k]}') is in no chunk");
    }

    [Theory]
    [InlineData(64, 0)]
    [InlineData(64, 16)]
    [InlineData(200, 40)]
    [InlineData(1000, 100)]
    public void Chunks_fit_the_budget_cover_the_document_in_order_and_overlap(int maxTokens, int overlap)
    {
        string doc = SyntheticText.Document(6000);
        var model = new WordTokenModel(4096);
        var chunks = DocumentChunker.ForModel(model, maxTokens, overlap).Chunk(doc);
        AssertValid(doc, chunks, WordTokenModel.Count, maxTokens, overlap);

        // Chunks are not starved: on average more than half the budget is new content.
        int total = WordTokenModel.Count(doc);
        Assert.True(chunks.Count <= 2 * total / (maxTokens - overlap) + 1, $"{chunks.Count} chunks for {total} tokens at {maxTokens}-{overlap}");

        if (overlap > 0 && maxTokens >= 200)
        {
            // Sentences are at most 18 words (19 with a paragraph break) and the previous chunk's new content is at
            // least half its room (> overlap + one sentence), so every chunk after the first repeats > overlap - 19.
            foreach (var c in chunks.Skip(1))
                Assert.True(WordTokenModel.Count(doc[c.Start..c.NewStart]) > overlap - 19, $"chunk {c.Index} overlap too small");
        }
        if (overlap == 0)
        {
            Assert.All(chunks, c => Assert.Equal(0, c.OverlapLength));
        }
    }

    [Fact]
    public void Cuts_fall_on_sentence_ends_and_prefer_paragraph_ends()
    {
        string doc = SyntheticText.Document(5000, seed: 7);
        var chunks = new DocumentChunker(WordTokenModel.Count, 300, 30).Chunk(doc);
        int paragraphEnds = 0;
        foreach (var c in chunks)
        {
            string text = c.TextOf(doc);
            Assert.True(char.IsUpper(text[0]), $"chunk {c.Index} starts mid-sentence: '{text[..20]}'");
            Assert.True(char.IsUpper(doc[c.NewStart]), $"chunk {c.Index} new content starts mid-sentence");
            Assert.Contains(text[^1], ".?");
            if (c.End == doc.Length || doc[c.End..].StartsWith("\n\n", StringComparison.Ordinal)) paragraphEnds++;
        }
        // Paragraphs are at most 5 × 18 = 90 tokens: ending at the last paragraph end keeps a chunk more than half full,
        // so every cut must be a paragraph end.
        Assert.Equal(chunks.Count, paragraphEnds);
    }

    [Fact]
    public void A_paragraph_longer_than_a_chunk_is_cut_between_sentences()
    {
        // One paragraph of 100 ten-word sentences, 1000 tokens, in 120-token chunks.
        var sb = new StringBuilder();
        for (int i = 0; i < 100; i++) sb.Append(i == 0 ? "" : " ").Append($"Sentence {i:D3} has exactly ten words in it for counting.");
        string doc = sb.ToString();
        var chunks = new DocumentChunker(WordTokenModel.Count, 120, 20).Chunk(doc);
        AssertValid(doc, chunks, WordTokenModel.Count, 120, 20);
        foreach (var c in chunks)
        {
            string text = c.TextOf(doc);
            Assert.StartsWith("Sentence ", text);
            Assert.EndsWith("counting.", text);
            // 20 overlap tokens are two whole sentences; the rest 10 new sentences.
            if (c.Index > 0) Assert.Equal(20, WordTokenModel.Count(doc[c.Start..c.NewStart].TrimEnd()));
            Assert.Equal(c.Index == chunks.Count - 1 ? c.Tokens : 120, c.Tokens);
        }
    }

    [Fact]
    public void A_sentence_longer_than_a_chunk_is_cut_between_words_and_a_long_word_between_characters()
    {
        string longSentence = string.Join(' ', Enumerable.Range(0, 500).Select(i => $"w{i}")) + ".";
        string longWord = string.Concat(Enumerable.Repeat("abcdefghij", 300));
        string emoji = string.Concat(Enumerable.Repeat("😀", 400));
        string doc = "Short start.\n\n" + longSentence + "\n\n" + longWord + " tail. " + emoji + "\n\nThe end.";

        // Count bytes of UTF-8 as tokens: a byte-level worst case where one character can be 4 tokens.
        static int Bytes(string s) => Encoding.UTF8.GetByteCount(s);
        foreach (var (counter, name) in new (Func<string, int>, string)[] { (WordTokenModel.Count, "words"), (Bytes, "bytes") })
        {
            var chunks = new DocumentChunker(counter, 64, 8).Chunk(doc);
            AssertValid(doc, chunks, counter, 64, 8);
            foreach (var c in chunks)
            {
                string text = c.TextOf(doc);
                Assert.False(char.IsLowSurrogate(text[0]) || char.IsHighSurrogate(text[^1]), $"{name}: chunk {c.Index} splits a surrogate pair");
            }
            Assert.Contains(chunks, c => c.TextOf(doc).StartsWith("The end", StringComparison.Ordinal) || c.TextOf(doc).EndsWith("The end.", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Cjk_stops_and_line_breaks_end_sentences()
    {
        static int Chars(string s) => s.Length;
        string doc = string.Concat(Enumerable.Range(0, 40).Select(i => $"第{i:D2}句话在这里。")) + "\n- item one\n- item two\n- item three";
        var chunks = new DocumentChunker(Chars, 40, 0).Chunk(doc);
        AssertValid(doc, chunks, Chars, 40, 0);
        Assert.All(chunks.Take(chunks.Count - 1), c => Assert.True(c.TextOf(doc).EndsWith('。') || c.TextOf(doc).EndsWith("item two", StringComparison.Ordinal) || c.TextOf(doc).EndsWith("item one", StringComparison.Ordinal), c.TextOf(doc)));
    }

    [Fact]
    public void Whitespace_only_gives_no_chunks_and_bad_sizes_are_refused()
    {
        Assert.Empty(new DocumentChunker(WordTokenModel.Count, 64, 0).Chunk(" \n\n\t "));
        Assert.Equal("maxTokens", Assert.Throws<ArgumentOutOfRangeException>(() => new DocumentChunker(WordTokenModel.Count, 16, 0)).ParamName);
        Assert.Equal("overlapTokens", Assert.Throws<ArgumentOutOfRangeException>(() => new DocumentChunker(WordTokenModel.Count, 64, 32)).ParamName);
        Assert.Equal("overlapTokens", Assert.Throws<ArgumentOutOfRangeException>(() => new DocumentChunker(WordTokenModel.Count, 64, -1)).ParamName);
    }

    [Fact]
    public void Real_tokenizer_chunks_fit_and_encoding_is_linear_in_the_document()
    {
        var model = models.Plain;
        string doc = SyntheticText.Document(3000, seed: 3);
        var chunks = DocumentChunker.ForModel(model, 256, 32).Chunk(doc);
        AssertValid(doc, chunks, t => model.Encode(t).Count, 256, 32);

        var counting = new WordTokenModel(4096);
        DocumentChunker.ForModel(counting, 256, 32).Chunk(doc);
        // Each sentence once, each chunk once more (with its overlap): about 2.2× the document, never quadratic.
        Assert.True(counting.EncodedChars < 3L * doc.Length, $"encoded {counting.EncodedChars} characters for a {doc.Length}-character document");
    }

    [Fact]
    public void A_200K_token_document_is_chunked_quickly()
    {
        var model = models.Plain;
        // The fixture's tokenizer has few merges: about 1.3 characters per token, so 150K words are > 200K tokens.
        string doc = SyntheticText.Document(150_000, seed: 11);
        var sw = Stopwatch.StartNew();
        var chunks = DocumentChunker.ForModel(model, 400, 40).Chunk(doc);
        sw.Stop();
        int tokens = chunks.Sum(c => c.Tokens - (c.Index == 0 ? 0 : model.Encode(doc[c.Start..c.NewStart]).Count));
        Assert.True(tokens > 200_000, $"document has only about {tokens} tokens");
        Assert.All(chunks, c => Assert.InRange(c.Tokens, 1, 400));
        Assert.Equal(doc.TrimEnd().Length, chunks[^1].End);
        Assert.True(sw.Elapsed < TimeSpan.FromSeconds(30), $"chunking {tokens} tokens took {sw.Elapsed}");
        TestContext.Current.SendDiagnosticMessage($"200K-token document: {chunks.Count} chunks in {sw.ElapsedMilliseconds} ms");
    }
}

using System.Text;
using AngleSharp.Dom;
using AngleSharp.Html.Parser;

namespace Actors.Grains.Ingestion;

/// <summary>
/// The main text of an HTML page with AngleSharp. Removed first: script, style, nav, aside, forms and their
/// controls, page-level header and footer (a header inside an article or main is the article's own heading and
/// stays), hidden elements and ARIA landmarks of the same roles. Then the root is the first &lt;main&gt; (or
/// role=main), else the only &lt;article&gt;, else &lt;body&gt;. Block elements end paragraphs (blank line),
/// &lt;br&gt; ends a line, list items and table rows are single lines, headings get "#" prefixes, &lt;pre&gt;
/// keeps its whitespace; other whitespace collapses as a browser would.
/// </summary>
internal static class HtmlTextExtractor
{
    private const string RemovedSelector =
        "script, style, noscript, template, nav, aside, form, button, select, input, textarea, iframe, object, embed, svg, canvas, dialog, "
        + "[hidden], [aria-hidden=true], [role=navigation], [role=complementary], [role=search], [role=banner], [role=contentinfo]";

    private static readonly HashSet<string> BlockElements = new(StringComparer.Ordinal)
    {
        "address", "article", "blockquote", "body", "caption", "dd", "details", "div", "dl", "dt", "fieldset", "figcaption", "figure",
        "header", "hgroup", "hr", "main", "p", "section", "summary", "center", "html",
    };

    public static ExtractedDocument Extract(ReadOnlySpan<byte> content, string fileName, string? mediaType, int maxChars)
    {
        var declared = CharsetDetector.CharsetOfMediaType(mediaType) ?? CharsetDetector.CharsetOfHtmlMeta(content);
        var (html, charset) = CharsetDetector.Decode(content, fileName, DocumentKind.Html, declared);
        var doc = new HtmlParser().ParseDocument(html);

        var title = doc.Title?.Trim();
        foreach (var e in doc.QuerySelectorAll(RemovedSelector).ToList()) e.Remove();
        foreach (var e in doc.QuerySelectorAll("footer").ToList()) e.Remove();
        foreach (var e in doc.QuerySelectorAll("header").ToList())
            if (e.ParentElement?.Closest("article, main, [role=main]") is null) e.Remove();
        foreach (var e in doc.QuerySelectorAll("*").Where(IsStyledHidden).ToList()) e.Remove();

        var articles = doc.QuerySelectorAll("article");
        var root = doc.QuerySelector("main, [role=main]") ?? (articles.Length == 1 ? articles[0] : null) ?? doc.Body ?? doc.DocumentElement;
        var writer = new ParagraphWriter(maxChars, fileName, DocumentKind.Html);
        new Walker(writer).Block(root);
        var text = writer.ToString();
        if (string.IsNullOrWhiteSpace(text) && root != doc.Body && doc.Body is not null)
        {
            // An empty <main> (content injected by script) should not hide text elsewhere on the page.
            writer = new ParagraphWriter(maxChars, fileName, DocumentKind.Html);
            new Walker(writer).Block(doc.Body);
            text = writer.ToString();
        }
        if (string.IsNullOrEmpty(title)) title = doc.QuerySelector("h1")?.TextContent is { } h1 ? TextNormalizer.CollapseWhitespace(h1) : null;
        return new ExtractedDocument(DocumentKind.Html, text, string.IsNullOrEmpty(title) ? null : TextNormalizer.CollapseWhitespace(title), charset);
    }

    private static bool IsStyledHidden(IElement e) =>
        e.GetAttribute("style") is { } style && style.Replace(" ", "", StringComparison.Ordinal).Contains("display:none", StringComparison.OrdinalIgnoreCase);

    /// <summary>Depth-first over the DOM, gathering inline text into the current paragraph's lines.</summary>
    private sealed class Walker(ParagraphWriter writer)
    {
        private readonly List<string> _lines = [];
        private readonly StringBuilder _line = new();
        private string _prefix = "";
        private readonly Stack<int> _lists = new(); // per open list: items numbered so far (ol), or -1 (ul)

        private string ListPrefix()
        {
            if (_lists.Count == 0) return "- "; // a stray <li>
            var indent = new string(' ', 2 * (_lists.Count - 1));
            var n = _lists.Pop();
            _lists.Push(n < 0 ? n : n + 1);
            return n < 0 ? indent + "- " : $"{indent}{n + 1}. ";
        }

        public void Block(INode node)
        {
            foreach (var child in node.ChildNodes) Visit(child);
            Flush();
        }

        private void Visit(INode node)
        {
            if (node is IText text) { _line.Append(text.Data); return; }
            if (node is not IElement e) return;
            var name = e.LocalName;
            switch (name)
            {
                case "br":
                    EndLine();
                    return;
                case "h1" or "h2" or "h3" or "h4" or "h5" or "h6":
                    Flush();
                    _prefix = new string('#', name[1] - '0') + " ";
                    Block(e);
                    return;
                case "ul" or "ol":
                    // A list is one run of lines; a nested list continues the run, indented two spaces a level.
                    Flush(tight: _lists.Count > 0);
                    _lists.Push(name == "ol" ? 0 : -1);
                    foreach (var child in e.ChildNodes) Visit(child);
                    Flush(tight: true);
                    _lists.Pop();
                    if (_lists.Count == 0) writer.Break();
                    return;
                case "li":
                    Flush(tight: true);
                    _prefix = ListPrefix();
                    foreach (var child in e.ChildNodes) Visit(child);
                    Flush(tight: true);
                    return;
                case "pre":
                    Flush();
                    writer.Paragraph(e.TextContent.Replace("\r\n", "\n").Trim('\n'));
                    return;
                case "table":
                    Flush();
                    writer.Break();
                    foreach (var row in e.QuerySelectorAll("tr"))
                    {
                        if (row.Closest("table") != e) continue; // nested tables: their rows belong to the inner table's cell text
                        var cells = row.Children.Where(c => c.LocalName is "td" or "th").Select(c => TextNormalizer.CollapseWhitespace(c.TextContent));
                        writer.Paragraph(string.Join(" | ", cells), tight: true);
                    }
                    writer.Break();
                    return;
                case "img":
                    return;
            }
            if (BlockElements.Contains(name))
            {
                Flush();
                foreach (var child in e.ChildNodes) Visit(child);
                Flush();
            }
            else
            {
                // Inline element (a, span, em, strong, code...): its text continues the current line.
                foreach (var child in e.ChildNodes) Visit(child);
            }
        }

        private void EndLine()
        {
            var t = TextNormalizer.CollapseWhitespace(_line.ToString());
            _line.Clear();
            if (t.Length > 0) _lines.Add(t);
        }

        private void Flush(bool tight = false)
        {
            EndLine();
            if (_lines.Count > 0) writer.Paragraph(_prefix + string.Join('\n', _lines), tight);
            _lines.Clear();
            _prefix = "";
            if (!tight) writer.Break();
        }
    }
}

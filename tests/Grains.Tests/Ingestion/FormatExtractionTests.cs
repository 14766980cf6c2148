using System.Text;
using Actors.Grains.Ingestion;

namespace Actors.Grains.Tests.Ingestion;

/// <summary>Each format's text, compared with the text written by hand for the generated input.</summary>
public sealed class FormatExtractionTests : IngestionTestBase
{
    private const string ArticleHtml = """
        <!DOCTYPE html>
        <html><head><title>The Tides of Amber Bay</title><style>body { color: red } .x::after { content: "STYLE TEXT" }</style>
        <script>var s = "SCRIPT TEXT";</script></head>
        <body>
        <header><div class="logo">SITE BANNER</div></header>
        <nav><ul><li><a href="/">NAV HOME</a></li><li>NAV ABOUT</li></ul></nav>
        <div role="navigation">ROLE NAV</div>
        <main>
         <article>
          <header><h1>The Tides  of Amber Bay</h1></header>
          <p>The bay fills twice a day.
             Fishermen wait for the <em>slack</em> water.</p>
          <p>Line one<br>Line two</p>
          <ul>
            <li>First item</li>
            <li>Second <b>item</b></li>
          </ul>
          <table><tr><th>Tide</th><th>Height</th></tr><tr><td>High</td><td>4.2 m</td></tr></table>
          <aside>ASIDE RELATED LINKS</aside>
          <form><label>FORM LABEL</label><input value="x"><button>FORM BUTTON</button></form>
          <div hidden>HIDDEN TEXT</div>
          <div style="display: none">STYLED HIDDEN TEXT</div>
          <p>Last paragraph.</p>
          <footer>ARTICLE FOOTER SHARE</footer>
         </article>
        </main>
        <aside>SIDEBAR</aside>
        <footer>PAGE FOOTER (c) 2026</footer>
        </body></html>
        """;

    private const string ArticleText = """
        # The Tides of Amber Bay

        The bay fills twice a day. Fishermen wait for the slack water.

        Line one
        Line two

        - First item
        - Second item

        Tide | Height
        High | 4.2 m

        Last paragraph.
        """;

    [Fact]
    public async Task Html_main_text_keeps_paragraphs_and_drops_navigation_header_footer_aside_script_style_forms()
    {
        var doc = await IngestAsync(Encoding.UTF8.GetBytes(ArticleHtml), "tides.html");
        Assert.Equal(DocumentKind.Html, doc.Kind);
        Assert.Equal(DocumentMediaTypes.Html, doc.MediaType);
        Assert.Equal(ArticleText, doc.Text);
        Assert.Equal("The Tides of Amber Bay", doc.Title);
        Assert.Equal("utf-8", doc.Charset);
        foreach (var hidden in new[] { "SITE BANNER", "NAV", "ROLE NAV", "SCRIPT", "STYLE", "ASIDE", "FORM", "HIDDEN", "FOOTER", "SIDEBAR" })
            Assert.DoesNotContain(hidden, doc.Text);
    }

    [Fact]
    public async Task Html_is_sniffed_without_name_or_media_type_and_body_is_used_without_main()
    {
        const string html = """
            <html><body>
            <nav>MENU</nav>
            <div><h2>Notes</h2><div>First <a href="#">linked</a> note.</div><div>Second note.</div></div>
            <footer>COPYRIGHT</footer>
            </body></html>
            """;
        var doc = await IngestAsync(Encoding.UTF8.GetBytes(html), "upload.bin");
        Assert.Equal(DocumentKind.Html, doc.Kind);
        Assert.Equal("## Notes\n\nFirst linked note.\n\nSecond note.", doc.Text);
        Assert.Null(doc.Title); // no <title> and no <h1>: an <h2> is not taken for the title
    }

    [Fact]
    public async Task Html_nested_and_ordered_lists_are_one_run_of_lines()
    {
        const string html = """
            <html><body><main>
            <p>Before.</p>
            <ul>
              <li>Fruit
                <ol><li>Apple</li><li>Pear</li></ol>
              </li>
              <li>Bread</li>
            </ul>
            <p>After.</p>
            </main></body></html>
            """;
        var doc = await IngestAsync(Encoding.UTF8.GetBytes(html), "lists.html");
        Assert.Equal("Before.\n\n- Fruit\n  1. Apple\n  2. Pear\n- Bread\n\nAfter.", doc.Text);
    }

    [Fact]
    public async Task Html_prefers_the_single_article_over_the_rest_of_the_body()
    {
        const string html = "<html><body><div>Cookie banner text</div><article><p>Story body.</p></article><div>Related stories</div></body></html>";
        var doc = await IngestAsync(Encoding.UTF8.GetBytes(html), "story.htm");
        Assert.Equal("Story body.", doc.Text);
    }

    [Fact]
    public async Task Html_in_windows_1252_declared_by_meta_is_decoded()
    {
        var html = "<html><head><meta charset=\"windows-1252\"><title>Caf\u00e9</title></head><body><main><p>\u201cCaf\u00e9\u201d costs \u20ac5.</p></main></body></html>";
        var bytes = CodePages.Get(1252).GetBytes(html);
        var doc = await IngestAsync(bytes, "cafe.html");
        Assert.Equal("\u201cCaf\u00e9\u201d costs \u20ac5.", doc.Text);
        Assert.Equal("Caf\u00e9", doc.Title);
        Assert.Equal("windows-1252", doc.Charset);
    }

    [Fact]
    public async Task Pdf_pages_are_separated_by_blank_lines_and_lines_of_a_block_join()
    {
        var pdf = TestDocuments.Pdf("Quarterly Notes", ["Alpha beta gamma.", "Second line here."], ["Page two text."]);
        var doc = await IngestAsync(pdf, "notes.pdf");
        Assert.Equal(DocumentKind.Pdf, doc.Kind);
        Assert.Equal(DocumentMediaTypes.Pdf, doc.MediaType);
        Assert.Equal("Alpha beta gamma. Second line here.\n\nPage two text.", doc.Text);
        Assert.Equal("Quarterly Notes", doc.Title);
        Assert.Null(doc.Charset);
    }

    [Fact]
    public async Task Pdf_two_columns_read_left_column_first_whatever_the_drawing_order()
    {
        var pdf = TestDocuments.TwoColumnPdf(["Left column opens.", "Left column closes."], ["Right column opens.", "Right column closes."]);
        var doc = await IngestAsync(pdf, "columns.pdf");
        Assert.Equal("Left column opens. Left column closes.\n\nRight column opens. Right column closes.", doc.Text);
    }

    [Fact]
    public async Task Pdf_is_detected_by_magic_bytes_whatever_the_name_says()
    {
        var pdf = TestDocuments.Pdf(null, ["Magic wins."]);
        var doc = await IngestAsync(pdf, "misnamed.txt", "text/plain");
        Assert.Equal(DocumentKind.Pdf, doc.Kind);
        Assert.Equal("Magic wins.", doc.Text);
    }

    [Fact]
    public async Task Docx_paragraphs_headings_lists_and_tables_become_lines()
    {
        var docx = TestDocuments.Docx("Report 2026",
            [new("Annual Report", HeadingLevel: 1), new("The year went well."), new("Revenue grew", ListItem: true), new("Costs fell", ListItem: true), new("Rent fell most", ListItem: true, ListLevel: 1), new("Details", HeadingLevel: 2)],
            table: [["Quarter", "Revenue"], ["Q1", "10"]],
            after: [new("Closing\twords.")]);
        var doc = await IngestAsync(docx, "report.docx");
        Assert.Equal(DocumentKind.Docx, doc.Kind);
        Assert.Equal(DocumentMediaTypes.Docx, doc.MediaType);
        Assert.Equal("""
            # Annual Report

            The year went well.

            - Revenue grew
            - Costs fell
              - Rent fell most

            ## Details

            Quarter | Revenue
            Q1 | 10

            Closing	words.
            """, doc.Text);
        Assert.Equal("Report 2026", doc.Title);
    }

    [Fact]
    public async Task Docx_is_detected_by_zip_magic_without_a_name()
    {
        var docx = TestDocuments.Docx(null, [new("Only paragraph.")]);
        var doc = await IngestAsync(docx, "upload", "application/octet-stream");
        Assert.Equal(DocumentKind.Docx, doc.Kind);
        Assert.Equal("Only paragraph.", doc.Text);
        Assert.Null(doc.Title);
    }

    [Fact]
    public async Task Markdown_is_kept_as_is_with_line_ends_normalized_and_title_from_first_heading()
    {
        var md = "\r\n# Design Notes\r\n\r\nSome *emphasis* and `code`.\r\n\r\n    indented code\r\n";
        var doc = await IngestAsync(Encoding.UTF8.GetBytes(md), "notes.md");
        Assert.Equal(DocumentKind.Markdown, doc.Kind);
        Assert.Equal(DocumentMediaTypes.Markdown, doc.MediaType);
        Assert.Equal("# Design Notes\n\nSome *emphasis* and `code`.\n\n    indented code", doc.Text);
        Assert.Equal("Design Notes", doc.Title);
    }

    [Fact]
    public async Task Plain_text_by_media_type()
    {
        var doc = await IngestAsync("Just text.\n"u8.ToArray(), "x", "text/plain; charset=utf-8");
        Assert.Equal(DocumentKind.PlainText, doc.Kind);
        Assert.Equal("Just text.", doc.Text);
        Assert.Null(doc.Title);
    }
}

/// <summary>Code-page encodings for building test inputs (the test process registers the provider once).</summary>
internal static class CodePages
{
    static CodePages() => Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);
    public static Encoding Get(int codePage) => Encoding.GetEncoding(codePage);
}

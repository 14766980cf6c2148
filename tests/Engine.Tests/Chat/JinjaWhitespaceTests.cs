using Actors.Engine.Chat;

namespace Actors.Engine.Tests.Chat;

/// <summary>
/// Whitespace handling as Jinja2 does it with transformers' settings (trim_blocks, lstrip_blocks,
/// keep_trailing_newline=False). Expected strings are derived by hand from jinja2.lexer's rules.
/// </summary>
public class JinjaWhitespaceTests
{
    internal static string R(string template, IReadOnlyDictionary<string, object?>? vars = null) =>
        ChatTemplate.Parse(template, "<s>", "</s>").Render([], false, vars);

    [Theory]
    // trim_blocks drops the newline right after a block tag; the text before {% endif %} keeps its newline.
    [InlineData("{% if true %}\nyes\n{% endif %}\n", "yes\n")]
    // lstrip_blocks removes indentation before a block tag at the start of a line...
    [InlineData("  {% if true %}x{% endif %}", "x")]
    [InlineData("a\n    {% if true %}x\n    {% endif %}b", "a\nx\nb")]
    // ...but not before a variable tag, nor with {%+.
    [InlineData("  {{ 'x' }}", "  x")]
    [InlineData("  {%+ if true %}x{% endif %}", "  x")]
    // ...and not when non-space text precedes the tag on its line.
    [InlineData("a {% if true %}b{% endif %}", "a b")]
    // Spaces between a '}}' and a '{%' on the same line are not at a line start.
    [InlineData("{{ 'x' }}  {% if true %}y{% endif %}", "x  y")]
    // After a trimmed block end the next line starts: its indentation is stripped.
    [InlineData("{% if true %}\n  {% if true %}z{% endif %}{% endif %}", "z")]
    // +%} disables trim_blocks for that tag.
    [InlineData("{% if true +%}\nx{% endif %}", "\nx")]
    // '-' strips all whitespace (newlines included) on its side.
    [InlineData("a  \n  {{- 'b' -}}  \n c", "abc")]
    [InlineData("{% if true -%}   \n  y{% endif %}", "y")]
    [InlineData("x\n\n   {%- if true %}y{% endif %}", "xy")]
    // Comments vanish; trim_blocks and lstrip_blocks apply to them too.
    [InlineData("a\n{# c #}\nb", "a\nb")]
    [InlineData("a\n   {# c #}\nb", "a\nb")]
    [InlineData("a {#- c -#}   b", "ab")]
    // A variable tag is not followed by trim_blocks.
    [InlineData("{{ 'a' }}\nb", "a\nb")]
    // One trailing newline of the source is dropped (keep_trailing_newline=False), only one.
    [InlineData("x\n", "x")]
    [InlineData("x\n\n", "x\n")]
    // \r\n is normalised to \n.
    [InlineData("a\r\n{% if true %}\r\nb{% endif %}", "a\nb")]
    // raw blocks keep tags verbatim.
    [InlineData("{% raw %}{{ x }}{% if %}{% endraw %}", "{{ x }}{% if %}")]
    public void WhitespaceRules(string template, string expected) => Assert.Equal(expected, R(template));

    [Fact]
    public void IndentedMultiLineTemplateRendersOnlyItsText()
    {
        const string t = """
            {%- for m in ['a', 'b'] %}
                {%- if loop.first %}
            first:{{ m }}
                {% else %}
            other:{{ m }}
                {% endif %}
            {%- endfor %}
            """;
        // Each branch body is "<text>\n": the indentation before {% else %} / {% endif %} goes (lstrip_blocks),
        // the newline after each block tag goes (trim_blocks) and '{%-' strips the rest.
        Assert.Equal("first:a\nother:b\n", R(t));
    }
}

using Actors.Engine.Chat;

namespace Actors.Engine.Tests.Chat;

/// <summary>Each construct of the Jinja2 subset; expected strings follow Python / Jinja2 semantics.</summary>
public class JinjaInterpreterTests
{
    private static string R(string template, IReadOnlyDictionary<string, object?>? vars = null) => JinjaWhitespaceTests.R(template, vars);

    private static readonly Dictionary<string, object?> Vars = new()
    {
        ["m"] = new Dictionary<string, object?> { ["role"] = "user", ["content"] = "x" },
        ["msgs"] = new List<object?>
        {
            new Dictionary<string, object?> { ["role"] = "system", ["content"] = "s" },
            new Dictionary<string, object?> { ["role"] = "user", ["content"] = "u1" },
            new Dictionary<string, object?> { ["role"] = "assistant", ["content"] = "a1" },
            new Dictionary<string, object?> { ["role"] = "user", ["content"] = "u2" },
        },
        ["d"] = new Dictionary<string, object?> { ["b"] = 2, ["a"] = 1 },
        ["n"] = 7,
        ["f"] = 2.5,
    };

    [Theory]
    [InlineData("{{ 1 }}|{{ 1.5 }}|{{ true }}|{{ false }}|{{ none }}|{{ None }}|{{ True }}", "1|1.5|True|False|None|None|True")]
    [InlineData("{{ 'a\\tb\\n' }}|{{ \"it's\" }}|{{ 'q\\'s' }}|{{ '\\u00e9\\x41' }}|{{ 'a\\d' }}", "a\tb\n|it's|q's|éA|a\\d")]
    [InlineData("{{ 'a' 'b' }}", "ab")]
    [InlineData("{{ [1, 'a', none, true] }}|{{ {'a': 1, 'b': 'x'} }}|{{ (1, 2) }}|{{ (1,) }}|{{ [] }}", "[1, 'a', None, True]|{'a': 1, 'b': 'x'}|(1, 2)|(1,)|[]")]
    [InlineData("{{ \"it's\" ~ [\"it's\"] }}", "it's[\"it's\"]")]
    [InlineData("{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 10 / 4 }}|{{ 4 / 2 }}|{{ 10 // 4 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 2 ** 10 }}|{{ -2 ** 2 }}", "7|9|2.5|2.0|2|-4|2|-2|1024|4")]
    [InlineData("{{ 0.1 + 0.2 }}|{{ 1e16 }}|{{ 1e15 }}|{{ 0.0001 }}|{{ 0.00001 }}|{{ 1.0 }}|{{ 2.5e-3 }}|{{ 1_000 }}", "0.30000000000000004|1e+16|1000000000000000.0|0.0001|1e-05|1.0|0.0025|1000")]
    [InlineData("{{ 'a' ~ 1 ~ none ~ true }}|{{ 'ab' * 2 }}|{{ [1] + [2] }}|{{ 'a' + 'b' }}|{{ true + 1 }}", "a1NoneTrue|abab|[1, 2]|ab|2")]
    [InlineData("{{ 1 < 2 < 3 }}|{{ 3 > 2 > 2 }}|{{ 1 == 1.0 }}|{{ 1 == true }}|{{ 'a' != 'b' }}|{{ [1, 2] == [1, 2] }}|{{ 'b' > 'a' }}|{{ 2 >= 2 }}", "True|False|True|True|True|True|True|True")]
    [InlineData("{{ 'a' in 'cat' }}|{{ 2 not in [1, 3] }}|{{ 'x' in {'x': 1} }}|{{ 1 in [1.0] }}|{{ not 'a' in 'b' }}", "True|True|True|True|True")]
    [InlineData("{{ 0 or 'b' }}|{{ 'a' and 'c' }}|{{ '' and 'c' }}|{{ not 0 }}|{{ not [] }}|{{ not 'x' }}", "b|c||True|True|False")]
    [InlineData("{{ 'y' if 1 else 'n' }}|{{ 'y' if 0 else 'n' }}|[{{ 'y' if 0 }}]|{{ 'a' if false else 'b' if true else 'c' }}", "y|n|[]|b")]
    [InlineData("{{ [1, 2, 3, 4][1:] }}|{{ 'hello'[::-1] }}|{{ [1, 2, 3][-1] }}|{{ 'abcdef'[1:4:2] }}|{{ [1, 2, 3][:-1] }}|{{ 'abc'[5:] }}|[{{ [1][3] }}]", "[2, 3, 4]|olleh|3|bd|[1, 2]||[]")]
    public void Expressions(string template, string expected) => Assert.Equal(expected, R(template));

    [Theory]
    [InlineData("{{ m.role }}|{{ m['content'] }}|{{ m.missing }}|{{ m.get('missing', 'd') }}|{{ m.get('role') }}|{{ m.get('zz') }}", "user|x||d|user|None")]
    [InlineData("{{ msgs[1].content }}|{{ msgs[-1]['role'] }}|{{ msgs | length }}|{{ msgs[1:] | length }}", "u1|user|4|3")]
    [InlineData("{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}|{% for k in d %}{{ k }}{% endfor %}|{{ d.keys() | list }}|{{ d.values() | list }}", "b=2,a=1,|ba|['b', 'a']|[2, 1]")]
    [InlineData("{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}|{% for k, v in d | dictsort %}{{ k }}{{ v }}{% endfor %}", "b2a1|a1b2")]
    [InlineData("{{ n + f }}|{{ n // 2 }}|{{ n is odd }}|{{ f is float }}|{{ n is integer }}", "9.5|3|True|True|True")]
    public void AttributesItemsAndExtraVariables(string template, string expected) => Assert.Equal(expected, R(template, Vars));

    [Theory]
    [InlineData("{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}{{ x }};{% endfor %}",
        "10TrueFalse332a;21FalseFalse321b;32FalseTrue310c;")]
    [InlineData("{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1] %}{{ x }}{% else %}empty{% endfor %}", "empty|1")]
    [InlineData("{% for c in 'abc' %}{{ c }}-{% endfor %}", "a-b-c-")]
    [InlineData("{% for x in range(6) if x is even %}{{ loop.index }}:{{ x }} {% endfor %}", "1:0 2:2 3:4 ")]
    [InlineData("{% for x in range(10) %}{% if x == 5 %}{% break %}{% endif %}{% if x is odd %}{% continue %}{% endif %}{{ x }}{% endfor %}", "024")]
    [InlineData("{% for x in [1, 2, 3] %}{{ loop.previtem }}{{ loop.nextitem }}{{ loop.cycle('a', 'b') }},{% endfor %}", "2a,13b,2a,")]
    [InlineData("{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %}", "37")]
    [InlineData("{% for x in nothing %}x{% endfor %}ok", "ok")]
    [InlineData("{% for i in [1, 2] %}{% for j in [1, 2] %}{{ loop.index * i }}{% endfor %}{{ loop.index }};{% endfor %}", "121;242;")]
    public void ForLoops(string template, string expected) => Assert.Equal(expected, R(template));

    [Theory]
    [InlineData("{% if 0 %}a{% elif '' %}b{% elif [1] %}c{% else %}d{% endif %}", "c")]
    [InlineData("{% if none %}a{% else %}d{% endif %}", "d")]
    // A loop body is its own scope, fresh in every iteration; 'if' is not a scope.
    [InlineData("{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + 10 %}{{ x }},{% endfor %}{{ x }}", "11,11,1")]
    [InlineData("{% if true %}{% set y = 5 %}{% endif %}{{ y }}", "5")]
    [InlineData("{% set ns = namespace(n=0, s='') %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}", "6 123")]
    [InlineData("{% set a, b = 1, 2 %}{{ b }}{{ a }}", "21")]
    [InlineData("{% set s %}a{{ 1 }}{% endset %}[{{ s }}]", "[a1]")]
    [InlineData("{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }}", "Hi Bob! Hi Al?")]
    [InlineData("{% filter upper %}abc{{ 'd' }}{% endfilter %}", "ABCD")]
    [InlineData("{% generation %}kept{% endgeneration %}", "kept")]
    [InlineData("{{ strftime_now('%%') }}{{ bos_token }}{{ eos_token }}{{ add_generation_prompt }}{{ tools }}{{ documents }}", "%<s></s>FalseNoneNone")]
    public void StatementsAndScopes(string template, string expected) => Assert.Equal(expected, R(template));

    [Theory]
    [InlineData("[{{ nope }}]|{{ nope is defined }}|{{ nope is undefined }}|{{ nope | default('z') }}|{{ nope | d('w') }}|{{ nope | length }}|{{ nope == nope }}|{{ nope is none }}|{{ not nope }}", "[]|False|True|z|w|0|True|False|True")]
    [InlineData("{{ none | default('z') }}|{{ none | default('z', true) }}|{{ '' | default('e', boolean=true) }}|{{ 0 | default(5) }}", "None|z|e|0")]
    [InlineData("{{ nope ~ 'a' }}|{% for x in nope %}x{% endfor %}|{{ nope | trim }}|{{ 'a' in nope }}", "a|||False")]
    public void UndefinedBehavesLikeJinja2Default(string template, string expected) => Assert.Equal(expected, R(template));

    [Theory]
    [InlineData("{{ nope.attr }}")]
    [InlineData("{{ m.missing.x }}")]
    [InlineData("{{ nope['k'] }}")]
    [InlineData("{{ nope + 1 }}")]
    [InlineData("{{ 'a' + 1 }}")]
    [InlineData("{{ 1 / 0 }}")]
    [InlineData("{{ nope | tojson }}")]
    [InlineData("{{ nope < 1 }}")]
    [InlineData("{{ [1].append(2) }}")]
    [InlineData("{{ 1 | nosuchfilter }}")]
    [InlineData("{% set x = 1 %}{% set x.y = 2 %}")]
    public void RuntimeErrorsThrow(string template)
    {
        var e = Assert.ThrowsAny<ChatTemplateException>(() => R(template, Vars));
        Assert.Contains("template:1:", e.Message);
    }

    [Theory]
    [InlineData("{{ '  x ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ 'aB' | upper }}|{{ 'aB' | lower }}|{{ 'hELLO wORLD' | capitalize }}|{{ 'hello wORLD-foo (bar' | title }}", "x|a|AB|ab|Hello world|Hello World-Foo (Bar")]
    [InlineData("{{ [1, 2] | length }}|{{ 'abc' | count }}|{{ ['a', 'b'] | join(', ') }}|{{ [1, 2] | join }}|{{ [3, 4] | first }}|{{ [3, 4] | last }}|{{ 'ab' | list }}", "2|3|a, b|12|3|4|['a', 'b']")]
    [InlineData("{{ 'aaa' | replace('a', 'b', 2) }}|{{ 'aaa' | replace('a', 'c') }}|{{ 12 | string ~ 3 }}|{{ '42' | int + 1 }}|{{ 'x' | int }}|{{ 3.9 | int }}|{{ 'x' | int(7) }}|{{ '2.5' | float }}", "bba|ccc|123|43|0|3|7|2.5")]
    [InlineData("{{ 'a\\nb' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent }}|{{ 'a\\n\\nb' | indent(1, blank=true) }}", "a\n  b|  a\n  b|a\n\n    b|a\n \n b")]
    [InlineData("{{ -3 | abs }}|{{ 2.567 | round(2) }}|{{ [3, 1, 2] | sort }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ [1, 2] | reverse | list }}|{{ ['a', 'A', 'b'] | unique | list }}|{{ [1, 2, 3] | sum }}|{{ [2, 9, 4] | max }}{{ [2, 9, 4] | min }}", "3|2.57|[1, 2, 3]|[3, 2, 1]|[2, 1]|['a', 'b']|6|92")]
    [InlineData("{{ '%s-%d' | format('a', 3) }}|{{ 'x' | safe }}|{{ [1, 2, 3, 4] | select('odd') | list }}|{{ [1, 2, 3, 4] | reject('odd') | list }}|{{ ['a', 'b'] | map('upper') | join }}", "a-3|x|[1, 3]|[2, 4]|AB")]
    public void Filters(string template, string expected) => Assert.Equal(expected, R(template));

    [Theory]
    [InlineData("{{ msgs | selectattr('role', 'equalto', 'user') | list | length }}|{{ msgs | rejectattr('role', 'eq', 'user') | map(attribute='role') | join(',') }}|{{ msgs | map(attribute='content') | join }}", "2|system,assistant|su1a1u2")]
    [InlineData("{{ msgs | selectattr('content') | list | length }}|{{ msgs | map(attribute='nope', default='-') | join }}", "4|----")]
    public void SelectAndMap(string template, string expected) => Assert.Equal(expected, R(template, Vars));

    [Fact]
    public void ToJsonMatchesPythonJsonDumps()
    {
        Assert.Equal("{\"a\": [1, 2.5, null, true], \"b\": \"é\\\"\\n<>&'\"}",
            R("{{ {'a': [1, 2.5, none, true], 'b': 'é\"\\n<>&\\''} | tojson }}"));
        Assert.Equal("{\n  \"a\": [\n    1,\n    {}\n  ],\n  \"b\": []\n}", R("{{ {'a': [1, {}], 'b': []} | tojson(indent=2) }}"));
        Assert.Equal("{\"a\": 1, \"b\": 2}", R("{{ d | tojson(sort_keys=true) }}", Vars));
        Assert.Equal("\"\\u0001\\t\"", R("{{ '\\x01\\t' | tojson }}"));
    }

    [Theory]
    [InlineData("{{ 'a' is string }}{{ 1 is number }}{{ {} is mapping }}{{ [] is iterable }}{{ [] is sequence }}{{ none is none }}{{ 3 is odd }}{{ 4 is even }}", "TrueTrueTrueTrueTrueTrueTrueTrue")]
    [InlineData("{{ true is true }}{{ false is false }}{{ 1 is true }}{{ 9 is divisibleby 3 }}{{ 'a' is not string }}{{ 1 is string }}{{ 'ab' is lower }}{{ 3 is in [1, 3] }}{{ 2 is gt 1 }}", "TrueTrueFalseTrueFalseFalseTrueTrueTrue")]
    [InlineData("{{ 1 is boolean }}{{ true is boolean }}{{ 1 is integer }}{{ 1.0 is integer }}{{ raise_exception is callable }}{{ 5 is eq 5 }}{{ 5 is ne 5 }}", "FalseTrueTrueFalseTrueTrueFalse")]
    public void Tests(string template, string expected) => Assert.Equal(expected, R(template));

    [Theory]
    [InlineData("{{ '  x '.strip() }}|{{ 'xxa'.lstrip('x') }}|{{ 'axx'.rstrip('x') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a b  c '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}", "x|a|a|['a', 'b', '', 'c']|['a', 'b', 'c']|['a', 'b c']|['a b', 'c']")]
    [InlineData("{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}|{{ 'hello wORLD 1st'.title() }}|{{ 'hELLO'.capitalize() }}|{{ 'aXa'.replace('a', 'b') }}", "True|True|ABab|Hello World 1St|Hello|bXb")]
    [InlineData("{{ '{} and {name} {{x}}'.format(1, name='n') }}|{{ '{1}{0}'.format('a', 'b') }}|{{ '-'.join(['a', 'b']) }}|{{ 'abcb'.find('b') }}|{{ 'abcb'.count('b') }}|{{ 'a\\nb\\n'.splitlines() }}", "1 and n {x}|ba|a-b|1|2|['a', 'b']")]
    public void Methods(string template, string expected) => Assert.Equal(expected, R(template));

    [Fact]
    public void RaiseExceptionThrowsWithExactlyItsMessage()
    {
        var e = Assert.ThrowsAny<ChatTemplateException>(() => R("a{{ raise_exception('Bad role: ' ~ 'tool') }}"));
        Assert.Equal("Bad role: tool", e.Message);
    }

    [Theory]
    [InlineData("a\n{{ 1 + }}", 2, 8)]
    [InlineData("{% if x %}never closed", 1, 23)]
    [InlineData("x\n  {% frobnicate %}", 2, 6)]
    [InlineData("{{ 'unterminated }}", 1, 4)]
    [InlineData("{% for x in y %}{% endif %}", 1, 20)]
    [InlineData("{{ x ) }}", 1, 6)]
    [InlineData("{# open comment", 1, 1)]
    public void SyntaxErrorsNameSourceLineAndColumn(string template, int line, int column)
    {
        var e = Assert.Throws<ChatTemplateSyntaxException>(() => ChatTemplate.Parse(template, source: "t.jinja"));
        Assert.Equal("t.jinja", e.TemplateSource);
        Assert.Equal((line, column), (e.Line, e.Column));
        Assert.StartsWith($"t.jinja:{line}:{column}: ", e.Message);
    }

    [Fact]
    public void RuntimeErrorsNameTheLine()
    {
        var e = Assert.ThrowsAny<ChatTemplateException>(() =>
            ChatTemplate.Parse("line1\n{{ m.x.y }}", source: "t.jinja").Render([], false, Vars));
        Assert.StartsWith("t.jinja:2: ", e.Message);
        Assert.Contains("'dict object' has no attribute 'x'", e.Message);
    }

    [Fact]
    public void StrftimeNowFormatsTheCurrentTime()
    {
        string year = DateTime.Now.Year.ToString(System.Globalization.CultureInfo.InvariantCulture);
        string got = R("{{ strftime_now('%Y-%m') }}");
        Assert.StartsWith(year + "-", got);
        Assert.Equal(7, got.Length);
        var now = DateTime.Now;
        string day = R("{{ strftime_now('%-d|%d %b') }}");
        Assert.Contains(day, new[] { Day(now), Day(now.AddSeconds(5)) });

        static string Day(DateTime t) => t.Day.ToString(System.Globalization.CultureInfo.InvariantCulture) + "|"
            + t.Day.ToString("00", System.Globalization.CultureInfo.InvariantCulture) + " "
            + t.ToString("MMM", System.Globalization.CultureInfo.InvariantCulture);
    }
}

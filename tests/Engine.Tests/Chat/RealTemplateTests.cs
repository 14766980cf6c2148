using Actors.Engine.Chat;

namespace Actors.Engine.Tests.Chat;

/// <summary>
/// The real chat templates of tools/reference/templates rendered for small conversations. Expected strings
/// are derived by hand from the template text and Jinja2's rules (every tag in Qwen2.5 and Mistral strips
/// its left whitespace, so only literal strings reach the output).
/// Provenance of tools/reference/templates (byte-identical to guidance-ai/guidance guidance/chat.py @5413339a,
/// which copies them from the Hugging Face tokenizer_config.json files it cites):
///   llama3.jinja  - meta-llama/Meta-Llama-3-8B-Instruct tokenizer_config.json (also GoogleCloudPlatform/vertex-ai-samples
///                   .../peft/train/vmg/templates/llama3.json, from Meta-Llama-3-70B-Instruct);
///   qwen2_5.jinja - Qwen/Qwen2.5-0.5B-Instruct @7ae5576 tokenizer_config.json (also vertex-ai-samples .../qwen2_5.json);
///   mistral.jinja - mistralai/Mistral-7B-Instruct-v0.2 tokenizer_config.json (same text in llama.cpp's test-chat-template.cpp);
///   system_prompt.jinja - written for this project.
/// </summary>
public class RealTemplateTests
{
    private static ChatMessage M(string role, string content) => new(role, content);

    [Fact]
    public void Llama3_TrimsContent_PutsBosOnFirstMessageOnly_AndAddsAssistantHeader()
    {
        var t = ChatTemplate.Parse(RepoPaths.Template("llama3"), "<|begin_of_text|>", "<|eot_id|>", "llama3.jinja");
        var msgs = new[] { M("system", "You are helpful."), M("user", " Hi there \n"), M("assistant", "Hello!") };
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are helpful.<|eot_id|>"
            + "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
            + "<|start_header_id|>assistant<|end_header_id|>\n\n",
            t.Render(msgs, addGenerationPrompt: true));
        Assert.Equal(
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
            t.Render([M("user", "Hi")], addGenerationPrompt: false));
    }

    [Fact]
    public void Qwen25_UsesDefaultSystemPromptWhenNoneIsGiven()
    {
        var t = ChatTemplate.Parse(RepoPaths.Template("qwen2_5"), null, "<|im_end|>", "qwen2_5.jinja");
        Assert.Equal(
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
            + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
            t.Render([M("user", "Hi")], addGenerationPrompt: true));
    }

    [Fact]
    public void Qwen25_GivenSystemPromptReplacesDefault_AndIsNotRepeated()
    {
        var t = ChatTemplate.Parse(RepoPaths.Template("qwen2_5"), null, "<|im_end|>", "qwen2_5.jinja");
        Assert.Equal(
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello.<|im_end|>\n",
            t.Render([M("system", "Be brief."), M("user", "Hi"), M("assistant", "Hello.")], addGenerationPrompt: false));
    }

    [Fact]
    public void Qwen25_ToolsBranch_ToolCallsAndToolResponses()
    {
        var t = ChatTemplate.Parse(RepoPaths.Template("qwen2_5"), null, "<|im_end|>", "qwen2_5.jinja");
        var tool = new Dictionary<string, object?>
        {
            ["type"] = "function",
            ["function"] = new Dictionary<string, object?>
            {
                ["name"] = "get_weather",
                ["description"] = "Get weather",
                ["parameters"] = new Dictionary<string, object?>
                {
                    ["type"] = "object",
                    ["properties"] = new Dictionary<string, object?> { ["city"] = new Dictionary<string, object?> { ["type"] = "string" } },
                    ["required"] = new List<object?> { "city" },
                },
            },
        };
        var messages = new List<IReadOnlyDictionary<string, object?>>
        {
            new Dictionary<string, object?> { ["role"] = "user", ["content"] = "Weather in Paris?" },
            new Dictionary<string, object?>
            {
                ["role"] = "assistant",
                ["content"] = "",
                ["tool_calls"] = new List<object?>
                {
                    new Dictionary<string, object?>
                    {
                        ["type"] = "function",
                        ["function"] = new Dictionary<string, object?> { ["name"] = "get_weather", ["arguments"] = new Dictionary<string, object?> { ["city"] = "Paris" } },
                    },
                },
            },
            new Dictionary<string, object?> { ["role"] = "tool", ["content"] = "{\"temp\": 20}" },
            new Dictionary<string, object?> { ["role"] = "tool", ["content"] = "sunny" },
        };
        string got = t.RenderMessageObjects(messages, addGenerationPrompt: true,
            new Dictionary<string, object?> { ["tools"] = new List<object?> { tool } });
        Assert.Equal(
            "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.\n\n# Tools\n\n"
            + "You may call one or more functions to assist with the user query.\n\n"
            + "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
            + "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", \"description\": \"Get weather\", \"parameters\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}, \"required\": [\"city\"]}}}"
            + "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n"
            + "<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n"
            + "<|im_start|>user\nWeather in Paris?<|im_end|>\n"
            + "<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>\n"
            + "<|im_start|>user\n<tool_response>\n{\"temp\": 20}\n</tool_response>\n<tool_response>\nsunny\n</tool_response><|im_end|>\n"
            + "<|im_start|>assistant\n",
            got);
    }

    [Fact]
    public void Mistral_FoldsSystemIntoFirstUserTurn()
    {
        var t = ChatTemplate.Parse(RepoPaths.Template("mistral"), "<s>", "</s>", "mistral.jinja");
        Assert.Equal(
            "<s> [INST] Sys\n\nHi [/INST] Hello</s> [INST] Bye [/INST]",
            t.Render([M("system", "Sys"), M("user", "Hi"), M("assistant", "Hello"), M("user", "Bye")], addGenerationPrompt: true));
        Assert.Equal("<s> [INST] Hi [/INST]", t.Render([M("user", "Hi")], addGenerationPrompt: false));
    }

    [Fact]
    public void Mistral_RaisesOnBrokenAlternationAndUnknownRoles()
    {
        var t = ChatTemplate.Parse(RepoPaths.Template("mistral"), "<s>", "</s>", "mistral.jinja");
        var e = Assert.ThrowsAny<ChatTemplateException>(() =>
            t.Render([M("user", "a"), M("assistant", "b"), M("user", "c"), M("user", "d")], false));
        Assert.Equal("After the optional system message, conversation roles must alternate user/assistant/user/assistant/...", e.Message);
        // A "tool" turn in an assistant position passes the alternation check and hits the role check.
        var e2 = Assert.ThrowsAny<ChatTemplateException>(() => t.Render([M("user", "a"), M("tool", "b")], false));
        Assert.Equal("Only user and assistant roles are supported, with the exception of an initial optional system message!", e2.Message);
    }

    [Fact]
    public void SystemPromptTemplate_WithSystemMessage()
    {
        var t = ChatTemplate.Parse(RepoPaths.Template("system_prompt"), "<s>", "</s>", "system_prompt.jinja");
        var msgs = new[] { M("system", "  Sys  "), M("user", "Hello"), M("assistant", " Hi! "), M("user", "my secret is \"x\"") };
        Assert.Equal(
            "<s>[SYSTEM 3] Sys\n<first>USER #1/3: Hello\nASSISTANT #2/3: Hi!\n"
            + "USER #3/3: my secret is \"x\" (quoted: \"my secret is \\\"x\\\"\")\n--- 3 turns, last=user ---\nASSISTANT #4:",
            t.Render(msgs, addGenerationPrompt: true));
    }

    [Fact]
    public void SystemPromptTemplate_WithoutSystemMessage_UsesDefaultOrExtraVariable()
    {
        var t = ChatTemplate.Parse(RepoPaths.Template("system_prompt"), "<s>", "</s>", "system_prompt.jinja");
        Assert.Equal("<s>[SYSTEM] You are a test model.\n<first>USER #1/1: Hi\n--- 1 turns, last=user ---\n",
            t.Render([M("user", "Hi")], addGenerationPrompt: false));
        Assert.Equal("<s>[SYSTEM] Custom.\n<first>USER #1/1: Hi\n--- 1 turns, last=user ---\n",
            t.Render([M("user", "Hi")], false, new Dictionary<string, object?> { ["default_system"] = "Custom." }));
    }

    [Fact]
    public void SystemPromptTemplate_RejectsUnknownRole()
    {
        var t = ChatTemplate.Parse(RepoPaths.Template("system_prompt"), "<s>", "</s>", "system_prompt.jinja");
        var e = Assert.ThrowsAny<ChatTemplateException>(() => t.Render([M("user", "a"), M("tool", "b")], false));
        Assert.Equal("Unexpected role: tool", e.Message);
    }

    [Fact]
    public void OneParsedTemplateRendersConcurrently()
    {
        // Grains share a parsed template; rendering must not share mutable state.
        var t = ChatTemplate.Parse(RepoPaths.Template("qwen2_5"), null, "<|im_end|>", "qwen2_5.jinja");
        var results = new string[64];
        Parallel.For(0, results.Length, i => results[i] = t.Render([M("user", "q" + i)], addGenerationPrompt: i % 2 == 0));
        for (int i = 0; i < results.Length; i++)
            Assert.Equal(t.Render([M("user", "q" + i)], addGenerationPrompt: i % 2 == 0), results[i]);
        Assert.EndsWith("<|im_start|>user\nq3<|im_end|>\n", results[3]);
    }
}

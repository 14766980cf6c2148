namespace Actors.Client.HuggingFace;

/// <summary>Where the hub and the cache are, as the huggingface_hub library reads them from the environment.</summary>
public sealed class HfHubOptions
{
    public const string DefaultEndpoint = "https://huggingface.co";

    /// <summary>Hub base URL (HF_ENDPOINT).</summary>
    public string Endpoint { get; set; } = DefaultEndpoint;

    /// <summary>Cache root holding models--ORG--NAME folders (HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub).</summary>
    public string CacheDirectory { get; set; } = "";

    /// <summary>Bearer token (HF_TOKEN); null for anonymous access.</summary>
    public string? Token { get; set; }

    /// <summary>Use the cache only, never the network (HF_HUB_OFFLINE=1).</summary>
    public bool Offline { get; set; }

    /// <summary>Attempts per file when a transfer breaks off (each resumes where the last stopped).</summary>
    public int MaxAttempts { get; set; } = 5;

    public static HfHubOptions FromEnvironment(Func<string, string?> getEnv)
    {
        static bool Truthy(string? v) => v is not null && (v == "1" || v.Equals("true", StringComparison.OrdinalIgnoreCase) || v.Equals("yes", StringComparison.OrdinalIgnoreCase) || v.Equals("on", StringComparison.OrdinalIgnoreCase));
        string cache;
        if (getEnv("HF_HUB_CACHE") is { Length: > 0 } hubCache) cache = hubCache;
        else if (getEnv("HF_HOME") is { Length: > 0 } home) cache = Path.Combine(home, "hub");
        else if (getEnv("XDG_CACHE_HOME") is { Length: > 0 } xdg) cache = Path.Combine(xdg, "huggingface", "hub");
        else cache = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "huggingface", "hub");
        return new HfHubOptions
        {
            Endpoint = (getEnv("HF_ENDPOINT") is { Length: > 0 } e ? e : DefaultEndpoint).TrimEnd('/'),
            CacheDirectory = cache,
            Token = getEnv("HF_TOKEN") is { Length: > 0 } t ? t : null,
            Offline = Truthy(getEnv("HF_HUB_OFFLINE")),
        };
    }
}

/// <summary>A model could not be fetched or found in the cache; the message says which and why.</summary>
public sealed class HfDownloadException(string message, Exception? inner = null) : Exception(message, inner);

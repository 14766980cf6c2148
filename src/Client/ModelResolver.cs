using Actors.Client.HuggingFace;

namespace Actors.Client;

/// <summary>
/// Turns what the user typed after --model into what the silo gets: a plain path becomes an absolute directory
/// (its contents are checked by the silo, which owns the model loader); hf:ORG/NAME[@REV] is downloaded into the
/// Hugging Face cache and becomes its snapshot directory.
/// </summary>
public static class ModelResolver
{
    public static async Task<string> ResolveAsync(string modelRef, TextWriter? progress, Func<string, string?> getEnv, CancellationToken ct)
    {
        if (HfModelRef.IsHfRef(modelRef))
        {
            HfModelRef hf;
            try { hf = HfModelRef.Parse(modelRef); }
            catch (ArgumentException e) { throw new CliException(e.Message); }
            using var downloader = new HfDownloader(HfHubOptions.FromEnvironment(getEnv), progress);
            try { return await downloader.DownloadAsync(hf, ct); }
            catch (HfDownloadException e) { throw new CliException(e.Message); }
        }
        var full = Path.GetFullPath(modelRef);
        if (!Directory.Exists(full))
            throw new CliException(File.Exists(full)
                ? $"model '{modelRef}' is a file; pass the model directory (config.json, *.safetensors, tokenizer.json)"
                : $"model directory '{full}' does not exist");
        return full;
    }
}

using System.Collections.Concurrent;
using Actors.Engine;
using Microsoft.Extensions.Logging;

namespace Actors.Grains;

/// <summary>
/// <see cref="IModelHost"/> over a <see cref="TextGeneratorFactory"/>: one load per resolved directory, run off the
/// Orleans scheduler (loading maps weights and may take seconds). A failed load is forgotten so the next call retries.
/// </summary>
public sealed partial class ModelHost : IModelHost, IDisposable
{
    private readonly TextGeneratorFactory? _factory;
    private readonly ILogger<ModelHost> _logger;
    private readonly ConcurrentDictionary<string, Lazy<Task<ITextGenerator>>> _models = new(StringComparer.Ordinal);
    private bool _disposed;

    public ModelHost(ILogger<ModelHost> logger, TextGeneratorFactory? factory = null)
    {
        _factory = factory;
        _logger = logger;
    }

    /// <summary>Absolute, normalized model directory for a ref; throws ArgumentException naming the ref when it is no directory.</summary>
    public static string ResolveDirectory(string modelRef)
    {
        if (string.IsNullOrWhiteSpace(modelRef))
            throw new ArgumentException("model reference is empty: pass a model directory", nameof(modelRef));
        if (modelRef.StartsWith("hf:", StringComparison.Ordinal))
            throw new ArgumentException($"model reference '{modelRef}' is a Hugging Face id; the client downloads it and passes the snapshot directory", nameof(modelRef));
        var full = Path.TrimEndingDirectorySeparator(Path.GetFullPath(modelRef));
        if (!Directory.Exists(full))
            throw new ArgumentException($"model directory '{full}' does not exist on this silo's machine", nameof(modelRef));
        return full;
    }

    public async ValueTask<ITextGenerator> GetAsync(string modelRef, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var directory = ResolveDirectory(modelRef);
        if (_factory is null)
            throw new InvalidOperationException("no text generator factory is registered in this silo (services.AddTextGeneratorFactory)");

        var lazy = _models.GetOrAdd(directory, dir => new Lazy<Task<ITextGenerator>>(() => Task.Run(() => Load(dir))));
        try
        {
            return await lazy.Value.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            _models.TryRemove(new KeyValuePair<string, Lazy<Task<ITextGenerator>>>(directory, lazy));
            throw;
        }
    }

    public bool TryGetLoaded(string modelRef, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ITextGenerator? generator)
    {
        generator = null;
        if (_disposed || string.IsNullOrWhiteSpace(modelRef) || modelRef.StartsWith("hf:", StringComparison.Ordinal)) return false;
        var directory = Path.TrimEndingDirectorySeparator(Path.GetFullPath(modelRef));
        if (_models.TryGetValue(directory, out var lazy) && lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully)
            generator = lazy.Value.Result;
        return generator is not null;
    }

    public IReadOnlyList<ITextGenerator> Loaded =>
        _disposed ? [] : [.. _models.Values.Where(l => l.IsValueCreated && l.Value.IsCompletedSuccessfully).Select(l => l.Value.Result)];

    private ITextGenerator Load(string directory)
    {
        LogLoading(directory);
        var started = System.Diagnostics.Stopwatch.GetTimestamp();
        try
        {
            var generator = _factory!(directory);
            LogLoaded(directory, generator.ModelId, generator.ContextLength, System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds);
            return generator;
        }
        catch (Exception e)
        {
            LogLoadFailed(e, directory);
            // The engine's exception types are not known to callers across the wire (the client never loads the
            // Engine), so the reason travels as a plain InvalidOperationException; the silo's log keeps the original.
            throw new InvalidOperationException($"model '{directory}' could not be loaded: {e.Message}");
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        foreach (var lazy in _models.Values)
        {
            if (lazy.IsValueCreated && lazy.Value.IsCompletedSuccessfully)
                lazy.Value.Result.Dispose();
        }
        _models.Clear();
    }

    [LoggerMessage(1, LogLevel.Information, "Loading model from {ModelDirectory}")]
    private partial void LogLoading(string modelDirectory);

    [LoggerMessage(2, LogLevel.Information, "Loaded model {ModelId} from {ModelDirectory}: context {ContextLength} tokens in {ElapsedMs:F0} ms")]
    private partial void LogLoaded(string modelDirectory, string modelId, int contextLength, double elapsedMs);

    [LoggerMessage(3, LogLevel.Warning, "Loading model from {ModelDirectory} failed")]
    private partial void LogLoadFailed(Exception exception, string modelDirectory);
}

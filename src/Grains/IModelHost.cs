using Actors.Engine;

namespace Actors.Grains;

/// <summary>
/// The models loaded in this silo. Each model directory is loaded once per silo (through the registered
/// <see cref="TextGeneratorFactory"/>) and shared by every grain of the silo; the host disposes them at shutdown.
/// </summary>
public interface IModelHost
{
    /// <summary>
    /// The loaded model for <paramref name="modelRef"/> (a model directory), loading it on first use.
    /// Throws ArgumentException for a ref that names no directory; the factory's own exception for a bad model.
    /// </summary>
    ValueTask<ITextGenerator> GetAsync(string modelRef, CancellationToken cancellationToken = default);

    /// <summary>The model for <paramref name="modelRef"/> if this silo has loaded it (never loads); false otherwise.</summary>
    bool TryGetLoaded(string modelRef, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out ITextGenerator? generator);

    /// <summary>The models loaded now (for device accounting).</summary>
    IReadOnlyList<ITextGenerator> Loaded { get; }
}

/// <summary>Loads a model from a resolved model directory (absolute path). Registered in DI by the silo host.</summary>
public delegate ITextGenerator TextGeneratorFactory(string resolvedModelDirectory);

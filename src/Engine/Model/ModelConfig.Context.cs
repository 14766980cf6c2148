namespace Actors.Engine.Model;

public sealed partial record ModelConfig
{
    /// <summary>
    /// Tokens one sequence can use with the configured RoPE scaling: max_position_embeddings unless a scaling with
    /// factor &gt; 1 extends it. When config.json names original_max_position_embeddings (yarn, llama3, and linear or
    /// dynamic in newer configs), max_position_embeddings is already the extended length in transformers' convention
    /// and the result is max(max_position_embeddings, original × factor); otherwise max_position_embeddings is the
    /// trained length and the result is max_position_embeddings × factor (a 4K model with linear ×4 serves 16K).
    /// </summary>
    public int EffectiveContextLength
    {
        get
        {
            if (RopeScaling is not { } s || s.Type == "default" || !(s.Factor > 1)) return MaxPositionEmbeddings;
            double extended = s.OriginalMaxPositionEmbeddings is { } original
                ? Math.Max(MaxPositionEmbeddings, original * s.Factor)
                : MaxPositionEmbeddings * s.Factor;
            return (int)Math.Min(int.MaxValue, Math.Floor(extended));
        }
    }
}

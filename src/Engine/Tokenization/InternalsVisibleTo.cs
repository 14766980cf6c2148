using System.Runtime.CompilerServices;

// The tokenizer tests check the internal code-point regex directly (UTF-16 vs code point matching).
[assembly: InternalsVisibleTo("Actors.Engine.Tests")]

namespace Actors.Engine.Tests.Runtime;

/// <summary>Finds a parity fixture made by tools/reference/make_fixtures.py.</summary>
internal static class FixtureModel
{
    public static string? Find(string name)
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "tests", "fixtures", "models", name);
            if (File.Exists(Path.Combine(candidate, "config.json"))) return candidate;
        }
        return null;
    }
}

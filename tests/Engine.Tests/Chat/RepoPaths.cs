namespace Actors.Engine.Tests.Chat;

internal static class RepoPaths
{
    /// <summary>The folder holding Actors.sln, found by walking up from the test binary.</summary>
    public static string Root()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Actors.sln"))) return dir.FullName;
        throw new InvalidOperationException($"Actors.sln not found above {AppContext.BaseDirectory}");
    }

    public static string Template(string name) =>
        File.ReadAllText(Path.Combine(Root(), "tools", "reference", "templates", name + ".jinja"));
}

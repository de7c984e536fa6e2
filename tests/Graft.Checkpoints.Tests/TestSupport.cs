namespace Graft.Checkpoints.Tests;

/// <summary>A folder under the system temp folder, deleted with everything in it when the test ends.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("graft-test-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public string Write(string name, byte[] bytes)
    {
        var p = File(name);
        System.IO.File.WriteAllBytes(p, bytes);
        return p;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>The one assertion every reader's hostile-input tests share.</summary>
internal static class Refusal
{
    /// <summary>
    /// Opening <paramref name="path"/> must fail with a <see cref="CheckpointFormatException"/> of <paramref name="kind"/>
    /// whose message names the file (and the tensor, when given); afterwards the file is released and deleted.
    /// </summary>
    public static CheckpointFormatException Expect(Func<string, IDisposable> open, string path, CheckpointErrorKind kind, string? tensor = null)
    {
        var ex = Assert.Throws<CheckpointFormatException>(() => open(path).Dispose());
        Assert.Equal(kind, ex.Kind);
        Assert.Equal(path, ex.FilePath);
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        if (tensor is not null)
        {
            Assert.Equal(tensor, ex.TensorName);
            Assert.Contains($"'{tensor}'", ex.Message, StringComparison.Ordinal);
        }
        // A refused file is released: it can be replaced at once.
        System.IO.File.Delete(path);
        return ex;
    }
}

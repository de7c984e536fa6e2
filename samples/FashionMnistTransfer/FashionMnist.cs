using System.Buffers.Binary;
using System.Diagnostics;
using System.IO.Compression;
using TorchSharp;
using static TorchSharp.torch;

/// <summary>
/// Fashion-MNIST as Debian's <c>dataset-fashion-mnist</c> installs it: four gzip'd idx files in
/// <c>/usr/share/datasets/fashion-mnist</c> (60,000 training and 10,000 test images, 28×28, 10 classes).
/// </summary>
internal static class FashionMnist
{
    public const string DefaultFolder = "/usr/share/datasets/fashion-mnist";
    public const string DebianPackage = "dataset-fashion-mnist";

    public static readonly string[] ClassNames =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>
    /// The folder holding the idx files. When it is missing and this process runs as root on a machine with apt-get,
    /// installs the Debian package (showing apt's output); otherwise says exactly what to run and returns null.
    /// </summary>
    public static string? Locate(string folder)
    {
        if (HasFiles(folder))
        {
            return folder;
        }
        if (folder == DefaultFolder && Environment.UserName == "root" && File.Exists("/usr/bin/apt-get"))
        {
            Console.WriteLine($"Fashion-MNIST is not installed; installing Debian's {DebianPackage} (apt-get, about 30 MB) …");
            if (Run("/usr/bin/apt-get", "install -y " + DebianPackage) != 0)
            {
                // A fresh machine may have no package lists yet.
                Run("/usr/bin/apt-get", "update");
                Run("/usr/bin/apt-get", "install -y " + DebianPackage);
            }
            if (HasFiles(folder))
            {
                return folder;
            }
        }
        Console.Error.WriteLine($"Fashion-MNIST was not found in {folder}. Install it with:");
        Console.Error.WriteLine($"  sudo apt-get install {DebianPackage}");
        Console.Error.WriteLine("or pass --data DIR, a folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            + "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz.");
        return null;
    }

    private static bool HasFiles(string folder) =>
        new[] { "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz" }
            .All(f => File.Exists(Path.Combine(folder, f)));

    private static int Run(string file, string arguments)
    {
        var start = new ProcessStartInfo(file, arguments) { UseShellExecute = false };
        start.Environment["DEBIAN_FRONTEND"] = "noninteractive";
        using var process = Process.Start(start)!;
        process.WaitForExit();
        return process.ExitCode;
    }

    /// <summary>Images (n, 28, 28) as bytes and labels (n) of one split, "train" or "t10k".</summary>
    public static (byte[] Pixels, byte[] Labels, int Count) Read(string folder, string split)
    {
        var pixels = ReadIdx(Path.Combine(folder, split + "-images-idx3-ubyte.gz"), 0x803, out var imageDims);
        var labels = ReadIdx(Path.Combine(folder, split + "-labels-idx1-ubyte.gz"), 0x801, out var labelDims);
        if (imageDims[0] != labelDims[0] || imageDims[1] != 28 || imageDims[2] != 28)
        {
            throw new InvalidDataException($"{folder}: {split} images {string.Join('×', imageDims)} do not match {labelDims[0]} labels of 28×28 images");
        }
        return (pixels, labels, imageDims[0]);
    }

    private static byte[] ReadIdx(string path, int magic, out int[] dims)
    {
        using var gz = new GZipStream(File.OpenRead(path), CompressionMode.Decompress);
        Span<byte> word = stackalloc byte[4];
        gz.ReadExactly(word);
        int found = BinaryPrimitives.ReadInt32BigEndian(word);
        if (found != magic)
        {
            throw new InvalidDataException($"{path}: idx magic 0x{found:x}, expected 0x{magic:x}");
        }
        dims = new int[magic & 0xff];
        long size = 1;
        for (int i = 0; i < dims.Length; i++)
        {
            gz.ReadExactly(word);
            dims[i] = BinaryPrimitives.ReadInt32BigEndian(word);
            size = checked(size * dims[i]);
        }
        var data = new byte[size];
        gz.ReadExactly(data);
        return data;
    }

    /// <summary>
    /// <paramref name="perClass"/> images of each class, picked at random with <paramref name="seed"/> (the same seed
    /// picks the same images), as a (n, 1, size, size) float tensor in the range the pretrained network expects
    /// (pixel values 0–255 minus 114, the mean ML.NET's ResNet preprocessing subtracts) and their labels, shuffled.
    /// </summary>
    public static (Tensor Images, Tensor Labels) Balanced(byte[] pixels, byte[] labels, int count, int perClass, int seed, int size)
    {
        var rng = new Random(seed);
        var picked = new List<int>();
        for (int c = 0; c < 10; c++)
        {
            var ofClass = Enumerable.Range(0, count).Where(i => labels[i] == c).ToArray();
            if (ofClass.Length < perClass)
            {
                throw new ArgumentException($"only {ofClass.Length} images of class {c}, {perClass} asked");
            }
            rng.Shuffle(ofClass);
            picked.AddRange(ofClass.Take(perClass));
        }
        var order = picked.ToArray();
        rng.Shuffle(order);
        var x = new float[order.Length * 28 * 28];
        var y = new long[order.Length];
        for (int k = 0; k < order.Length; k++)
        {
            for (int p = 0; p < 28 * 28; p++)
            {
                x[k * 28 * 28 + p] = pixels[order[k] * 28 * 28 + p] - 114f;
            }
            y[k] = labels[order[k]];
        }
        var images = tensor(x, [order.Length, 1, 28, 28]);
        if (size != 28)
        {
            images = nn.functional.interpolate(images, [size, size], mode: InterpolationMode.Bilinear, align_corners: false);
        }
        return (images, tensor(y));
    }
}

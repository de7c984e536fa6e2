using System.Globalization;
using System.Numerics;

namespace Graft.Checkpoints.PyTorch;

public sealed partial class PyTorchReader
{
    /// <summary>Finds the dictionaries of tensors and the plain values in the unpickled object, with bounded depth.</summary>
    private sealed class Walker(string path)
    {
        private readonly HashSet<object> _seen = new(ReferenceEqualityComparer.Instance);

        public List<(string Path, PyDict Dict)> Dictionaries { get; } = [];

        /// <summary>Dictionaries made of the tensors of a dictionary that also holds other entries.</summary>
        public HashSet<PyDict> Partial { get; } = new(ReferenceEqualityComparer.Instance);

        public Dictionary<string, string> Metadata { get; } = new(StringComparer.Ordinal);

        public void Walk(object root)
        {
            if (root is PyDict { Count: 0 } empty)
            {
                Dictionaries.Add(("", empty)); // torch.save({}) or an empty state dict: a dictionary of no tensors
                return;
            }
            Visit(root, "", 0);
        }

        private void Visit(object value, string at, int depth)
        {
            if (depth > MaxNesting)
            {
                throw new CheckpointFormatException(CheckpointErrorKind.Corrupt, path, null, $"containers nested deeper than {MaxNesting} levels (at '{Truncate(at)}')");
            }
            if (value is not (PyDict or PyList or PyTuple) || !_seen.Add(value))
            {
                return;
            }
            switch (value)
            {
                case PyDict d:
                    if (d.Count > 0 && d.Entries.All(e => e.Key is string && e.Value is TensorRef))
                    {
                        Dictionaries.Add((at, d));
                        return;
                    }
                    if (d.Entries.Any(e => e.Key is string && e.Value is TensorRef))
                    {
                        // Tensors beside other entries (a nested state dict, numbers): never dropped silently. They are a
                        // dictionary of their own at this key path (its other entries are walked as usual), chosen by
                        // --key or by size like any other, and always named among the candidates.
                        var partial = new PyDict(d.IsOrderedDict);
                        foreach (var (k, v) in d.Entries.Where(e => e.Key is string && e.Value is TensorRef))
                        {
                            partial.Set(k, v);
                        }
                        Partial.Add(partial);
                        Dictionaries.Add((at, partial));
                    }
                    foreach (var (k, v) in d.Entries)
                    {
                        var child = Join(at, KeyText(k));
                        if (IsPlain(v))
                        {
                            if (Metadata.Count < MaxMetadataEntries)
                            {
                                Metadata[child] = PlainText(v);
                            }
                        }
                        else
                        {
                            Visit(v, child, depth + 1);
                        }
                    }
                    break;
                case PyList l:
                    for (var i = 0; i < l.Items.Count; i++)
                    {
                        Visit(l.Items[i], Join(at, i.ToString(CultureInfo.InvariantCulture)), depth + 1);
                    }
                    break;
                case PyTuple t:
                    for (var i = 0; i < t.Items.Length; i++)
                    {
                        Visit(t.Items[i], Join(at, i.ToString(CultureInfo.InvariantCulture)), depth + 1);
                    }
                    break;
            }
        }

        private static string Truncate(string s) => s.Length > 200 ? s[..200] + "…" : s;

        private static string Join(string at, string key) => at.Length == 0 ? key : at + "/" + key;

        private static bool IsPlain(object v) => v is string or long or BigInteger or double or bool;

        private static string PlainText(object v) => v switch
        {
            string s => s,
            bool b => b ? "True" : "False",
            double d => d.ToString("R", CultureInfo.InvariantCulture),
            IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
            _ => PyTypes.Name(v),
        };

        private static string KeyText(object k) => k switch
        {
            PyTuple t => "(" + string.Join(", ", t.Items.Select(KeyText)) + ")",
            PyNone => "None",
            _ => PlainText(k),
        };
    }
}

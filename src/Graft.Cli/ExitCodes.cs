using Graft.Checkpoints;
using Graft.Transfer;

namespace Graft.Cli;

/// <summary>Documented exit codes of the <c>graft</c> command.</summary>
internal static class ExitCodes
{
    public const int Ok = 0;
    /// <summary><c>graft diff --exit-code</c> only: the checkpoints differ (like <c>git diff --exit-code</c>).</summary>
    public const int Differs = 1;
    /// <summary>
    /// The command line could not be parsed (unknown option, missing argument): 64 as sysexits' EX_USAGE, apart from
    /// <see cref="Differs"/> so that a typo never reads as "the files differ".
    /// </summary>
    public const int Syntax = 64;
    /// <summary>
    /// An argument value is invalid (bad rule, output equal to an input, unknown format, a bad environment variable), or
    /// the plan refuses what the arguments ask (a rule that does not fit a tensor): <see cref="InvalidInputException"/>
    /// and <see cref="TransferPlanException"/>.
    /// </summary>
    public const int InvalidArgument = 2;
    /// <summary>An input file is missing or unreadable, or the output cannot be written.</summary>
    public const int FileError = 3;
    /// <summary>A checkpoint is malformed or hostile.</summary>
    public const int BadCheckpoint = 4;
    /// <summary><c>--strict</c>: something would not be fully transferred. Nothing was written.</summary>
    public const int NotStrict = 5;
    /// <summary>libtorch's CPU convolutions compute wrong values on this machine and the workaround did not cure them; nothing was computed.</summary>
    public const int Numerics = 6;
    /// <summary>A numerical verification failed (the demo's checks): a promise did not hold on this machine.</summary>
    public const int VerificationFailed = 7;
    /// <summary>A bug in Graft; rerun with <c>--verbose</c> for the stack trace.</summary>
    public const int Internal = 70;
}

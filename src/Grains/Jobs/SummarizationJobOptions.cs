namespace Actors.Grains.Jobs;

/// <summary>How summarization jobs run. Defaults are the constants below.</summary>
public sealed class SummarizationJobOptions
{
    public const int DefaultMaxConcurrentSteps = 16;
    public const int DefaultStepAttempts = 6;
    public static readonly TimeSpan DefaultResumePeriod = TimeSpan.FromMinutes(1);
    public static readonly TimeSpan DefaultRetryDelay = TimeSpan.FromSeconds(1);
    /// <summary>Longest wait between two tries of a step.</summary>
    public static readonly TimeSpan MaxRetryDelay = TimeSpan.FromSeconds(15);

    /// <summary>Steps of one level that run at once (each on its own DocumentGrain session, spread by placement).</summary>
    public int MaxConcurrentSteps { get; set; } = DefaultMaxConcurrentSteps;

    /// <summary>
    /// Period of the reminder that re-activates an unfinished job (on a live silo, after its silo died). Must be at
    /// least the reminder service's MinimumReminderPeriod (1 minute by default).
    /// </summary>
    public TimeSpan ResumePeriod { get; set; } = DefaultResumePeriod;

    /// <summary>Tries of one step before the job fails (a silo dying under a step costs one try).</summary>
    public int StepAttempts { get; set; } = DefaultStepAttempts;

    /// <summary>Wait before the second try of a failed step; it doubles for each later try, up to <see cref="MaxRetryDelay"/>.</summary>
    public TimeSpan RetryDelay { get; set; } = DefaultRetryDelay;
}

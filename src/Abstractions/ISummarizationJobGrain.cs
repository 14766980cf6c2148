namespace Actors.Abstractions;

/// <summary>
/// One long-document summarization job (key: job id from <see cref="SummarizationJobs.JobId"/>). Plans direct or
/// map-reduce, runs the steps on DocumentGrains spread over the silos, checkpoints every finished step before it counts,
/// and resumes from its checkpoints on another silo when its silo dies (a reminder re-activates it).
/// Submit through <see cref="SummarizationJobs.SubmitAsync"/> (it picks the key).
/// </summary>
public interface ISummarizationJobGrain : IGrainWithStringKey
{
    /// <summary>
    /// Starts the job, or returns the existing one of equal (document, model, options). On a generation-0 job with
    /// <see cref="SubmitJob.Force"/> a new generation is started and its info returned. The request (and the document in
    /// the blob store) is persisted before this returns. Throws ArgumentException for a bad request, or one that does not
    /// belong to this job id.
    /// </summary>
    Task<JobInfo> Submit(SubmitJob request);

    /// <summary>The job's info; Status Pending with an empty ModelRef when it was never submitted.</summary>
    Task<JobInfo> GetInfo();

    Task<JobProgress> GetProgress();

    /// <summary>
    /// The progress now, then each change, until the job is final (the last item is final). Ends early only when the
    /// caller cancels. Throws InvalidOperationException when the job was never submitted.
    /// </summary>
    IAsyncEnumerable<JobProgress> Watch(CancellationToken cancellationToken = default);

    /// <summary>The final summary (when succeeded) and every checkpointed step's summary.</summary>
    Task<JobResult> GetResult();

    /// <summary>Stops running steps and marks the job cancelled (persisted). A final job is left as it is.</summary>
    Task<JobInfo> Cancel();
}

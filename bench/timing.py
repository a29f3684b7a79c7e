"""How every Python contender of bench/cpu.sh is timed, so that they are timed alike:
two warm-up calls, then calls for at least SECONDS (and at least three),
one batch each; peak RSS of the whole process."""
import resource
import statistics
import time


def time_batches(run, batch, seconds):
    """The fields images_per_second, image_batch_ms {p50, p95, mean}, image_batches, peak_rss_mib."""
    for _ in range(2):
        run()
    ms = []
    start = time.monotonic()
    while len(ms) < 3 or time.monotonic() - start < seconds:
        t = time.monotonic()
        run()
        ms.append((time.monotonic() - t) * 1000)
    ms.sort()
    return {
        "images_per_second": batch * len(ms) / (sum(ms) / 1000),
        "image_batch_ms": {"p50": statistics.median(ms), "p95": ms[min(len(ms) - 1, int(0.95 * len(ms)))],
                           "mean": sum(ms) / len(ms)},
        "image_batches": len(ms),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }

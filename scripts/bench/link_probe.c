/*
 * link_probe.c: the link between the ranks, measured the way the gradient exchange uses it
 * (in the manner of the OSU micro-benchmarks' osu_allreduce): MPI_Allreduce of float sums in
 * place, message sizes from 4 bytes to 16 MiB, each size repeated until 0.2 s have passed
 * (at least 10 times, after 3 warm-up calls), the median time of a call as the slowest rank
 * saw it. From these it fits the model the README's scaling estimate uses,
 *
 *     T(p, n) = 2 log2(p) alpha + 2 (p - 1)/p n beta     (Rabenseifner: reduce-scatter + allgather)
 *
 * by least squares on the relative error over all sizes, and prints alpha (the latency of a
 * message step) and 1/beta (the bandwidth a byte sees). Rank 0 prints one LINK line per size
 * and one FIT line, key=value pairs, after a human-readable table.
 *
 * Then the CPU work of the link (--cpu-bytes N, default 1 MiB; 0 = skip): allreduces of N
 * bytes, each polled with MPI_Test and 20 us sleeps (so a waiting rank leaves its CPU idle
 * instead of spinning in MPI's progress loop), and the busy time (user, system, interrupts)
 * of all of this machine's CPUs from /proc/stat over them. One CPU line: the wall time of a
 * call polled that way, and the CPU time it kept busy per rank. Meaningful when every rank
 * runs on this machine (one node, or link.sh's namespace nodes). Where the busy time comes
 * near the plain call's time, moving the bytes is the cores' own work (TCP between
 * namespaces: the kernel copies every byte and runs the protocol) and no overlap can hide it
 * behind computation on the same cores.
 *
 *   mpirun -np 2 build/link_probe [--max-bytes N] [--seconds S]
 */
#define _POSIX_C_SOURCE 200809L /* nanosleep, sysconf */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Busy and total jiffies of all CPUs (the first line of /proc/stat); 0 when unreadable. */
static int cpu_jiffies(long long *busy, long long *total)
{
    FILE *f = fopen("/proc/stat", "r");
    long long v[8] = {0};
    const int got = f ? fscanf(f, "cpu %lld %lld %lld %lld %lld %lld %lld %lld", v, v + 1, v + 2, v + 3, v + 4,
                               v + 5, v + 6, v + 7)
                      : 0;
    if (f)
        fclose(f);
    *total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
    *busy = *total - v[3] - v[4]; /* all but idle and iowait */
    return got == 8;
}

/* Seconds of one allreduce of n floats polled with sleeps, and the busy CPU seconds of this
 * machine per call and rank, over `reps` calls. */
static void cpu_work(float *buf, int n, int reps, int size, double *wall, double *busy)
{
    long long b0, t0, b1, t1;
    MPI_Barrier(MPI_COMM_WORLD);
    const int ok0 = cpu_jiffies(&b0, &t0);
    const double w0 = MPI_Wtime();
    for (int i = 0; i < reps; i++) {
        MPI_Request req;
        MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
        for (int done = 0;;) {
            MPI_Test(&req, &done, MPI_STATUS_IGNORE);
            if (done)
                break;
            nanosleep(&(struct timespec){.tv_sec = 0, .tv_nsec = 20000}, NULL);
        }
    }
    MPI_Barrier(MPI_COMM_WORLD);
    *wall = (MPI_Wtime() - w0) / reps;
    const int ok1 = cpu_jiffies(&b1, &t1);
    const double hz = (double)sysconf(_SC_CLK_TCK);
    *busy = ok0 && ok1 ? (double)(b1 - b0) / hz / reps / size : NAN;
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median seconds of one MPI_Allreduce of n floats, over ranks the slowest. */
static double time_allreduce(float *buf, int n, double budget, double *times, int max_reps)
{
    for (int i = 0; i < 3; i++)
        MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    int reps = 0;
    double spent = 0.0;
    int go = 1;
    while (go) {
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = MPI_Wtime();
        MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        double t = MPI_Wtime() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD); /* the slowest rank */
        times[reps++] = t;
        spent += t;
        go = reps < max_reps && (reps < 10 || spent < budget); /* every rank sees the same t: the same go */
    }
    qsort(times, (size_t)reps, sizeof *times, cmp_double);
    return times[reps / 2];
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    long max_bytes = 16L << 20, cpu_bytes = 1L << 20;
    double budget = 0.2;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--max-bytes"))
            max_bytes = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds"))
            budget = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--cpu-bytes"))
            cpu_bytes = atol(argv[i + 1]);
    }
    if (max_bytes < 4 || budget <= 0.0 || cpu_bytes < 0) {
        if (rank == 0)
            fprintf(stderr, "link_probe: --max-bytes must be at least 4, --seconds positive, --cpu-bytes >= 0\n");
        MPI_Finalize();
        return 2;
    }
    enum { MAX_REPS = 100000, MAX_SIZES = 32 };
    const long buf_bytes = max_bytes > cpu_bytes ? max_bytes : cpu_bytes;
    float *buf = calloc((size_t)buf_bytes / sizeof(float) + 1, sizeof *buf);
    double *times = malloc(MAX_REPS * sizeof *times);
    if (!buf || !times) {
        fprintf(stderr, "link_probe: out of memory\n");
        MPI_Abort(MPI_COMM_WORLD, 6);
    }
    char host[MPI_MAX_PROCESSOR_NAME];
    int len, hosts = 1;
    MPI_Get_processor_name(host, &len);
    /* how many hosts: rank 0 compares every rank's name with those seen before */
    char *all = rank == 0 ? malloc((size_t)size * MPI_MAX_PROCESSOR_NAME) : NULL;
    MPI_Gather(host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, all, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0, MPI_COMM_WORLD);
    for (int r = 1; rank == 0 && r < size; r++) {
        int seen = 0;
        for (int q = 0; q < r && !seen; q++)
            seen = !strcmp(all + (size_t)r * MPI_MAX_PROCESSOR_NAME, all + (size_t)q * MPI_MAX_PROCESSOR_NAME);
        hosts += !seen;
    }
    free(all);
    double bytes[MAX_SIZES], secs[MAX_SIZES];
    int k = 0;
    if (rank == 0)
        printf("MPI_Allreduce (float sum, in place), %d ranks on %d host%s; median of >= 10 calls, slowest rank\n"
               "%12s %12s %12s\n", size, hosts, hosts == 1 ? "" : "s", "bytes", "us", "GB/s (algbw)");
    for (long b = 4; b <= max_bytes && k < MAX_SIZES; b *= 4) {
        const int n = (int)(b / (long)sizeof(float));
        bytes[k] = (double)b;
        secs[k] = time_allreduce(buf, n, budget, times, MAX_REPS);
        if (rank == 0)
            printf("%12ld %12.2f %12.3f\n", b, 1e6 * secs[k], bytes[k] / secs[k] / 1e9);
        k++;
    }
    /* T = a + b n, weighted least squares on the relative error (weights 1/T^2) */
    double s00 = 0, s01 = 0, s11 = 0, r0 = 0, r1 = 0;
    for (int i = 0; i < k; i++) {
        const double w = 1.0 / (secs[i] * secs[i]);
        s00 += w;
        s01 += w * bytes[i];
        s11 += w * bytes[i] * bytes[i];
        r0 += w * secs[i];
        r1 += w * secs[i] * bytes[i];
    }
    const double det = s00 * s11 - s01 * s01;
    double a = (r0 * s11 - r1 * s01) / det, b = (s00 * r1 - s01 * r0) / det;
    const double steps = size > 1 ? 2.0 * log2((double)size) : 1.0, share = size > 1 ? 2.0 * (size - 1) / size : 1.0;
    const double alpha = a / steps, beta = b / share;
    if (rank == 0) {
        for (int i = 0; i < k; i++)
            printf("LINK np=%d hosts=%d bytes=%.0f us=%.3f model_us=%.3f\n", size, hosts, bytes[i], 1e6 * secs[i],
                   1e6 * (a + b * bytes[i]));
        printf("FIT np=%d hosts=%d alpha_us=%.3f bandwidth_GBps=%.3f\n", size, hosts, 1e6 * alpha,
               beta > 0 ? 1e-9 / beta : INFINITY);
        printf("model: T(p, n) = 2 log2(p) alpha + 2 (p-1)/p n beta with alpha = %.2f us, 1/beta = %.2f GB/s\n",
               1e6 * alpha, beta > 0 ? 1e-9 / beta : INFINITY);
    }
    if (cpu_bytes >= 4) {
        const int n = (int)(cpu_bytes / (long)sizeof(float));
        double spin = time_allreduce(buf, n, budget, times, MAX_REPS), wall, busy;
        const int reps = (int)fmin(2000.0, fmax(50.0, 2.0 / fmax(spin, 1e-6))); /* about 2 s */
        cpu_work(buf, n, reps, size, &wall, &busy);
        if (rank == 0)
            printf("CPU np=%d hosts=%d bytes=%ld us=%.3f polled_us=%.3f busy_us_per_rank=%.3f\n"
                   "the CPU work of a %ld-byte allreduce: %.1f us a call (%.1f us polled with sleeps), keeping %.1f us "
                   "of CPU busy per rank\n",
                   size, hosts, cpu_bytes, 1e6 * spin, 1e6 * wall, 1e6 * busy, cpu_bytes, 1e6 * spin, 1e6 * wall,
                   1e6 * busy);
    }
    free(buf);
    free(times);
    MPI_Finalize();
    return 0;
}

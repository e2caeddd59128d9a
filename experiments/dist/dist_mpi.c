/* dist_mpi.c - dist.h over MPI (built when LOUPE_MPI is defined: make MPI=1). */
#ifdef LOUPE_MPI
#include "dist.h"

#include <mpi.h>

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static bool started;          /* MPI_Init was called by lp_dist_init */
static int rank_, size_ = 1, local_size_ = 1;

/* Rank 0 keeps every rank's pid and host to tell, while it waits, whether one died. */
typedef struct peer {
    long pid;
    char host[64];
} peer;
static peer *peers;

bool lp_dist_built(void) { return true; }

static bool launched_by_mpirun(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMI_SIZE") || getenv("PMIX_RANK");
}

lp_status lp_dist_init(lp_error *err)
{
    if (started || !launched_by_mpirun()) return LP_OK;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
        return lp_error_set(err, LP_ERR_IO, "MPI_Init failed: cannot join the other ranks of mpirun");
    started = true;
    /* Errors come back as codes, so a lost peer is reported (and the run marked), not
     * an abort from inside the library. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &size_);
    MPI_Comm local;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local) ==
        MPI_SUCCESS) {
        MPI_Comm_size(local, &local_size_);
        MPI_Comm_free(&local);
    }
    peer me = {.pid = (long)getpid()};
    gethostname(me.host, sizeof me.host - 1);
    if (rank_ == 0 && !(peers = calloc((size_t)size_, sizeof *peers)))
        return lp_error_set(err, LP_ERR_NOMEM, "out of memory for %d ranks", size_);
    MPI_Gather(&me, (int)sizeof me, MPI_BYTE, peers, (int)sizeof me, MPI_BYTE, 0, MPI_COMM_WORLD);
    return LP_OK;
}

void lp_dist_finalize(void)
{
    if (!started) return;
    lp_dist_watch_stop();
    MPI_Finalize();
    started = false;
    free(peers);
    peers = NULL;
}

int lp_dist_rank(void) { return rank_; }
int lp_dist_size(void) { return size_; }
int lp_dist_local_size(void) { return local_size_; }

/* ---- collectives, each timed for the watchdog ---- */

static atomic_llong waiting_since;   /* CLOCK_MONOTONIC ns when a collective began, 0 outside */
static const char *_Atomic waiting_in;
static lp_dist_dead_fn dead_fn;
static void *dead_ctx;
static pthread_mutex_t dead_lock = PTHREAD_MUTEX_INITIALIZER;

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Report that the job cannot go on (once, whichever thread sees it first) and end
 * this process: the others are gone or stuck, so there is nothing to clean up. */
static void die(const char *message)
{
    pthread_mutex_lock(&dead_lock);
    if (dead_fn) dead_fn(dead_ctx, message);
    else fprintf(stderr, "loupe: rank %d: %s\n", rank_, message);
    fflush(stdout);
    fflush(stderr);
    _exit(1);
}

static long long spent_ns, n_calls;   /* main thread only */

double lp_dist_seconds(long long *calls)
{
    if (calls) *calls = n_calls;
    return spent_ns * 1e-9;
}

static void enter(const char *what)
{
    atomic_store(&waiting_in, what);
    atomic_store(&waiting_since, now_ns());
}

static void leave(int rc)
{
    long long since = atomic_exchange(&waiting_since, 0);
    if (since) {
        spent_ns += now_ns() - since;
        n_calls++;
    }
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING] = "", msg[MPI_MAX_ERROR_STRING + 128];
    int len = 0;
    MPI_Error_string(rc, text, &len);
    snprintf(msg, sizeof msg, "rank %d of %d lost the others in %s: MPI says: %s", rank_, size_,
             atomic_load(&waiting_in), text);
    die(msg);
}

/* Wait for a nonblocking collective: poll for up to 300 us (a rank that arrives
 * with the others never sleeps), then poll every 50 us asleep, so that on a busy
 * machine a rank waiting for a descheduled peer gives its core back instead of
 * spinning on it, as MPI's blocking calls do (the worker pool of core/pool.c waits
 * the same way). */
static int wait_for(MPI_Request *req)
{
    const char *mode = getenv("LOUPE_MPI_WAIT");
    if (mode && !strcmp(mode, "spin")) return MPI_Wait(req, MPI_STATUS_IGNORE);
    long long t0 = now_ns();
    for (;;) {
        int done = 0, rc = MPI_Test(req, &done, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS || done) return rc;
        if (now_ns() - t0 > 300 * 1000) {
            struct timespec pause = {0, 50 * 1000};
            nanosleep(&pause, NULL);
        }
    }
}

void lp_dist_sum_f32(float *buf, size_t n)
{
    if (size_ == 1) return;
    enter("the gradient sum");
    for (size_t off = 0; off < n; off += INT_MAX / 2) {
        size_t part = n - off < INT_MAX / 2 ? n - off : INT_MAX / 2;
        MPI_Request req;
        int rc = MPI_Iallreduce(MPI_IN_PLACE, buf + off, (int)part, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
        if (rc == MPI_SUCCESS) rc = wait_for(&req);
        if (rc != MPI_SUCCESS) leave(rc);
    }
    leave(MPI_SUCCESS);
}

void lp_dist_sum_f64(double *buf, size_t n)
{
    if (size_ == 1) return;
    enter("a sum of metrics");
    leave(MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
}

bool lp_dist_any(bool b)
{
    if (size_ == 1) return b;
    int v = b;
    enter("agreeing whether to stop");
    leave(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_LOR, MPI_COMM_WORLD));
    return v != 0;
}

void lp_dist_minmax_u64(uint64_t v, uint64_t *min, uint64_t *max)
{
    /* min of ~v is ~max of v: both in one call */
    uint64_t buf[2] = {v, ~v};
    if (size_ > 1) {
        enter("comparing the weights' hashes");
        leave(MPI_Allreduce(MPI_IN_PLACE, buf, 2, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD));
    }
    *min = buf[0];
    *max = ~buf[1];
}

lp_status lp_dist_agree(lp_status s, lp_error *err)
{
    if (size_ == 1) return s;
    int first = s ? rank_ : size_;
    enter("agreeing on an outcome");
    leave(MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD));
    if (first == size_) return LP_OK;
    struct { int status; char msg[LP_ERROR_MSG_MAX]; } out = {0};
    if (rank_ == first) {
        out.status = s;
        snprintf(out.msg, sizeof out.msg, "%s", err ? err->msg : "");
    }
    enter("agreeing on an outcome");
    leave(MPI_Bcast(&out, (int)sizeof out, MPI_BYTE, first, MPI_COMM_WORLD));
    if (err && rank_ != first) {
        err->status = (lp_status)out.status;
        if (first > 0) snprintf(err->msg, sizeof err->msg, "rank %d: %.1000s", first, out.msg);
        else snprintf(err->msg, sizeof err->msg, "%s", out.msg);
    }
    return (lp_status)out.status;
}

lp_status lp_dist_share(lp_status s, void **data, size_t *size, lp_error *err)
{
    if (size_ == 1) return s;
    struct { int status; unsigned long long size; char msg[LP_ERROR_MSG_MAX]; } head = {0};
    if (rank_ == 0) {
        head.status = s;
        head.size = s ? 0 : *size;
        if (s) snprintf(head.msg, sizeof head.msg, "%s", err ? err->msg : "");
    }
    enter("receiving rank 0's data");
    leave(MPI_Bcast(&head, (int)sizeof head, MPI_BYTE, 0, MPI_COMM_WORLD));
    if (head.status) {
        if (rank_ != 0 && err) {
            err->status = (lp_status)head.status;
            snprintf(err->msg, sizeof err->msg, "%s", head.msg);
        }
        return (lp_status)head.status;
    }
    unsigned char *bytes = rank_ == 0 ? *data : NULL;
    if (rank_ != 0) {
        *data = NULL;
        *size = (size_t)head.size;
        /* Every rank takes part in the broadcast below, so a failed allocation
         * cannot simply return: it receives into nothing and says so after. */
        if (head.size && !(bytes = malloc((size_t)head.size))) {
            static unsigned char sink[1 << 16];
            for (unsigned long long off = 0; off < head.size; off += sizeof sink) {
                int part = (int)(head.size - off < sizeof sink ? head.size - off : sizeof sink);
                enter("receiving rank 0's data");
                leave(MPI_Bcast(sink, part, MPI_BYTE, 0, MPI_COMM_WORLD));
            }
            return lp_error_set(err, LP_ERR_NOMEM, "out of memory for %llu bytes from rank 0", head.size);
        }
    }
    for (unsigned long long off = 0; off < head.size; off += 1 << 16) {
        int part = (int)(head.size - off < (1u << 16) ? head.size - off : 1u << 16);
        enter("receiving rank 0's data");
        leave(MPI_Bcast(bytes + off, part, MPI_BYTE, 0, MPI_COMM_WORLD));
    }
    if (rank_ != 0) *data = bytes;
    return LP_OK;
}

/* ---- rank 0's watchdog ---- */

/* Is process pid of this host gone, or a zombie waiting for mpirun to reap it? */
static bool process_gone(long pid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return true;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');   /* the name may hold spaces and parentheses */
    return p && (p[2] == 'Z' || p[2] == 'X');
}

static pthread_t watch_thread;
static atomic_bool watch_running;

static void *watch(void *arg)
{
    (void)arg;
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    while (atomic_load(&watch_running)) {
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
        long long since = atomic_load(&waiting_since);
        /* A collective that ends normally takes microseconds once all ranks are in
         * it; only a wait past that is worth a look at the peers. */
        if (!since || now_ns() - since < 60 * 1000 * 1000) continue;
        for (int r = 1; r < size_; r++) {
            if (strcmp(peers[r].host, host) || !process_gone(peers[r].pid)) continue;
            if (!atomic_load(&waiting_since)) break;
            char msg[512];
            snprintf(msg, sizeof msg,
                     "rank %d of %d (pid %ld on %s) died while rank 0 waited for it in %s; "
                     "mpirun ends the job", r, size_, peers[r].pid, peers[r].host,
                     atomic_load(&waiting_in));
            die(msg);
        }
    }
    return NULL;
}

lp_status lp_dist_watch_start(lp_dist_dead_fn on_dead, void *ctx, lp_error *err)
{
    pthread_mutex_lock(&dead_lock);
    dead_fn = on_dead;
    dead_ctx = ctx;
    pthread_mutex_unlock(&dead_lock);
    if (size_ == 1 || rank_ != 0 || atomic_load(&watch_running)) return LP_OK;
    atomic_store(&watch_running, true);
    if (pthread_create(&watch_thread, NULL, watch, NULL)) {
        atomic_store(&watch_running, false);
        return lp_error_set(err, LP_ERR_NOMEM, "cannot start the thread that watches the other ranks");
    }
    return LP_OK;
}

void lp_dist_watch_stop(void)
{
    if (atomic_load(&watch_running)) {
        atomic_store(&watch_running, false);
        pthread_join(watch_thread, NULL);
    }
    pthread_mutex_lock(&dead_lock);
    dead_fn = NULL;
    dead_ctx = NULL;
    pthread_mutex_unlock(&dead_lock);
}
#else
typedef int lp_dist_mpi_unused; /* ISO C wants something in every file */
#endif

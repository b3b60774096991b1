/* The physical limit of task spawning on this machine: spawn a program N times with K
 * processes in flight (posix_spawn, which glibc implements with vfork-like clone), and
 * print the elapsed wall time.
 *
 * Usage: spawnloop N [INFLIGHT [PROGRAM]]   (defaults: INFLIGHT=2, PROGRAM=/bin/true)
 * Output (one line, JSON): {"spawns": N, "inflight": K, "seconds": S, "failed": F}
 * stdout/stderr of the children go to /dev/null, like a task with output discarded.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s N [INFLIGHT [PROGRAM]]\n", argv[0]);
        return 2;
    }
    long n = atol(argv[1]);
    long inflight = argc > 2 ? atol(argv[2]) : 2;
    const char *program = argc > 3 ? argv[3] : "/bin/true";
    if (n < 1 || inflight < 1) {
        fprintf(stderr, "N and INFLIGHT must be positive\n");
        return 2;
    }

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
#ifdef POSIX_SPAWN_USEVFORK
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_USEVFORK);
#endif
    char *child_argv[] = {(char *)program, NULL};

    long started = 0, finished = 0, running = 0, failed = 0;
    double t0 = now();
    while (finished < n) {
        while (running < inflight && started < n) {
            pid_t pid;
            int rc = posix_spawn(&pid, program, &fa, &attr, child_argv, environ);
            if (rc != 0) {
                fprintf(stderr, "posix_spawn: %s\n", strerror(rc));
                return 1;
            }
            started++;
            running++;
        }
        int status;
        pid_t done = waitpid(-1, &status, 0);
        if (done < 0) {
            perror("waitpid");
            return 1;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed++;
        running--;
        finished++;
    }
    double elapsed = now() - t0;
    printf("{\"spawns\": %ld, \"inflight\": %ld, \"seconds\": %.6f, \"failed\": %ld}\n", n, inflight,
           elapsed, failed);
    return 0;
}

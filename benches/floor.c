/*
 * The floor for what each worker costs a default run of `check_workers -n NAME` (issue 17).
 *
 * It reads, per process, exactly the /proc files a default run reads (strace of the check
 * after issue 17, `-n NAME` with no filter and no --metrics), in the same order, with the
 * fewest syscalls that can read them: openat, one read, close, and getdents64 for fd/.
 *
 *   the scan, every process in /proc:   PID/comm (by path): the name test
 *   the scan, a process named NAME:     open PID/, then through it stat, status, io
 *   after the scan, each worker:        open PID/ again, then through it stat (start time
 *                                       check), fd/ (entries counted), limits, cgroup
 *
 * It parses nothing beyond the name and the fd count, keeps no state but the workers' pids,
 * writes no tick file: no check that reports the default figures can read less per worker.
 * `bash benches/per_worker.sh` times it with W workers and with none, as it does the check.
 *
 * Usage: floor NAME    prints the number of processes named NAME and their fds.
 * Build: cc -O2 -o floor benches/floor.c
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char buf[4096];          /* one read of a proc file, as the check's */
static char dents[32768];       /* one getdents64 buffer, as the check's for /proc */

/* openat(dir, name), one read, close; the bytes read, or -1 */
static ssize_t slurp(int dir, const char *name) {
    int fd = openat(dir, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    return n;
}

/* the entries of PID/fd/ but . and .., read with getdents64 to the end; -1 if unreadable */
static long count_fds(int dir) {
    int fd = openat(dir, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    long count = 0;
    ssize_t n;
    while ((n = getdents64(fd, dents, sizeof dents)) > 0)
        for (ssize_t off = 0; off < n;) {
            struct dirent64 *e = (struct dirent64 *)(dents + off);
            if (e->d_name[0] != '.') count++;
            off += e->d_reclen;
        }
    close(fd);
    return count;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s NAME\n", argv[0]);
        return 3;
    }
    size_t want = strlen(argv[1]);
    int proc = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (proc < 0) return 3;
    char list[32768], path[300];
    int *pids = NULL;
    size_t count = 0, cap = 0;
    ssize_t n;

    /* the scan: comm of every process; stat, status, io of those named NAME */
    while ((n = getdents64(proc, list, sizeof list)) > 0)
        for (ssize_t off = 0; off < n;) {
            struct dirent64 *e = (struct dirent64 *)(list + off);
            off += e->d_reclen;
            if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
            snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
            ssize_t len = slurp(AT_FDCWD, path);
            if (len > 0 && buf[len - 1] == '\n') len--;
            if (len != (ssize_t)want || memcmp(buf, argv[1], want) != 0) continue;
            snprintf(path, sizeof path, "/proc/%s", e->d_name);
            int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dir < 0) continue;
            slurp(dir, "stat");
            slurp(dir, "status");
            slurp(dir, "io");
            close(dir);
            if (count == cap && !(pids = realloc(pids, (cap = cap ? 2 * cap : 64) * sizeof *pids)))
                return 3;
            pids[count++] = atoi(e->d_name);
        }
    close(proc);

    /* each worker again: stat, fd/, limits, cgroup */
    long fds = 0;
    for (size_t i = 0; i < count; i++) {
        snprintf(path, sizeof path, "/proc/%d", pids[i]);
        int dir = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dir < 0) continue;
        slurp(dir, "stat");
        long f = count_fds(dir);
        if (f > 0) fds += f;
        slurp(dir, "limits");
        slurp(dir, "cgroup");
        close(dir);
    }
    printf("%zu workers, %ld fds\n", count, fds);
    free(pids);
    return 0;
}

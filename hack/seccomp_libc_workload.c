/* A RUN-step workload for hack/seccomp_measure.py: the C library's everyday calls, as programs in
   RUN steps make them (stdio, files and folders, processes and pipes, threads, time, memory, users,
   limits, signals, names and sockets). Built static against glibc and against musl (Alpine's C
   library), whose syscalls differ (musl: open, stat, fork, pipe, writev, ...; glibc: openat, clone3, ...). */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t got;
static void on_signal(int sig) { got = sig; }
static void *worker(void *arg) { return arg; }

int main(void) {
    char buf[PATH_MAX], text[64];
    struct stat st;
    printf("libc workload\n");
    fflush(stdout);
    fprintf(stderr, "libc workload: stderr\n");
    /* files and folders */
    mkdir("/tmp/w", 0755);
    if (chdir("/tmp/w") != 0 || !getcwd(buf, sizeof buf)) return 1;
    FILE *f = fopen("a.txt", "w");
    fputs("hello\n", f);
    fclose(f);
    f = fopen("a.txt", "r");
    fgets(text, sizeof text, f);
    fclose(f);
    f = fopen("big.bin", "w+");
    static char block[1 << 16];
    fwrite(block, 1, sizeof block, f);
    rewind(f);
    fread(block, 1, sizeof block, f);
    fclose(f);
    unlink("big.bin");
    int fd = open("a.txt", O_RDWR | O_APPEND);
    write(fd, "x", 1);
    fsync(fd);
    fstat(fd, &st);
    lseek(fd, 0, SEEK_SET);
    read(fd, text, sizeof text);
    int copy = dup(fd);
    dup2(copy, 9);
    close(copy);
    close(9);
    ftruncate(fd, 2);
    close(fd);
    stat("a.txt", &st);
    lstat("a.txt", &st);
    access("a.txt", R_OK);
    rename("a.txt", "b.txt");
    link("b.txt", "c.txt");
    symlink("b.txt", "s");
    readlink("s", buf, sizeof buf);
    realpath("s", buf);
    chmod("b.txt", 0600);
    chown("b.txt", getuid(), getgid());
    utimes("b.txt", NULL);
    DIR *dir = opendir(".");
    while (readdir(dir)) {}
    closedir(dir);
    unlink("s");
    unlink("c.txt");
    remove("b.txt");
    chdir("/");
    rmdir("/tmp/w");
    /* processes, pipes, threads */
    int p[2];
    pipe(p);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        execl("/bin/sh", "sh", "-c", "echo child", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    read(p[0], text, sizeof text);
    close(p[0]);
    waitpid(pid, NULL, 0);
    if (system("true") != 0) return 2;
    FILE *out = popen("echo popen", "r");
    fgets(text, sizeof text, out);
    pclose(out);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    /* time */
    struct timespec ts;
    struct timeval tv;
    clock_gettime(CLOCK_REALTIME, &ts);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    gettimeofday(&tv, NULL);
    time_t now = time(NULL);
    strftime(text, sizeof text, "%F %T", localtime(&now));
    nanosleep(&(struct timespec){0, 1000}, NULL);
    usleep(1);
    /* memory */
    char *big = malloc(1 << 22);
    memset(big, 1, 1 << 22);
    free(big);
    void *mapped = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(mapped, 1 << 20);
    /* users, limits, system, signals */
    getpwnam("root");
    getgrgid(0);
    getpid();
    getppid();
    geteuid();
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    struct utsname un;
    uname(&un);
    sysconf(_SC_NPROCESSORS_ONLN);
    isatty(1);
    signal(SIGUSR1, on_signal);
    raise(SIGUSR1);
    /* names and sockets */
    /* names: /etc/hosts, then DNS (the measurement's server knows registry.druppie.test) */
    const char *names[] = {"localhost", "registry.druppie.test", "no-such-name.druppie.invalid"};
    for (unsigned i = 0; i < sizeof names / sizeof *names; i++) {
        struct addrinfo *ai = NULL;
        int err = getaddrinfo(names[i], "443", NULL, &ai);
        printf("%s: %s\n", names[i], err ? gai_strerror(err) : "found");
        if (!err) freeaddrinfo(ai);
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(1), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    connect(s, (struct sockaddr *)&to, sizeof to);
    close(s);
    poll(NULL, 0, 0);
    select(0, NULL, NULL, NULL, &(struct timeval){0, 0});
    printf("libc workload done (signal %d)\n", (int)got);
    return 0;
}

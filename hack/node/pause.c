/* The pod sandbox's process: it holds the pod's namespaces open and does nothing else.
 *
 * The usual pause image comes from a registry this stack cannot reach, so the stack builds its
 * own from this file (hack/node/images). It exits on SIGINT or SIGTERM and reaps any child that
 * is re-parented to it (it is PID 1 of the sandbox when the pod shares its PID namespace). */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int signo) { (void)signo; _exit(0); }

static void reap(int signo) {
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    struct sigaction on_stop = {.sa_handler = stop};
    struct sigaction on_child = {.sa_handler = reap, .sa_flags = SA_NOCLDSTOP};
    sigaction(SIGINT, &on_stop, NULL);
    sigaction(SIGTERM, &on_stop, NULL);
    sigaction(SIGCHLD, &on_child, NULL);
    for (;;) {
        pause();
    }
    return EXIT_SUCCESS;
}

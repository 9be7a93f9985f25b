/* The compat client's ceiling: a server that reads tt-metal's 112-byte
 * allocation-server messages and throws them away, answering QUERY (type 3)
 * with an empty answer. No server that handles the messages can be faster,
 * so compat_ratio.sh prints this rate against the POC's too: the most any
 * server could reach on this machine with this client (one blocking send()
 * per message; its system calls, not the server, bound the rate).
 *
 *   gcc -O2 -o compat_sink compat_sink.c && ./compat_sink SOCKET
 */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

enum { MSG = 112, QUERY = 3 };

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: compat_sink SOCKET\n");
        return 2;
    }
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    strncpy(a.sun_path, argv[1], sizeof a.sun_path - 1);
    unlink(argv[1]);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 4) != 0) {
        perror(argv[1]);
        return 1;
    }
    int c = accept(s, 0, 0);
    if (c < 0) {
        perror("accept");
        return 1;
    }
    static char buf[MSG * 4096];
    size_t have = 0;
    for (;;) {
        ssize_t n = read(c, buf + have, sizeof buf - have);
        if (n <= 0)
            return 0;
        have += (size_t)n;
        size_t off = 0;
        for (; have - off >= MSG; off += MSG) {
            if (buf[off] == QUERY) {
                char answer[MSG];
                memset(answer, 0, sizeof answer);
                answer[0] = QUERY;
                if (write(c, answer, sizeof answer) != (ssize_t)sizeof answer)
                    return 1;
            }
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
}

/* floor: the reference process of the agent footprint benchmark (bench/footprint.sh).
 *
 * It links what waferwatch-agent links (bench/CMakeLists.txt takes the agent's link
 * libraries: libzmq, protobuf-c, libyaml, libm, pthreads and whatever the agent adds),
 * loads its CURVE keys the way the agent does, opens one CURVE DEALER to a collector with
 * the agent's socket options (heartbeats included, so the floor pays the same idle
 * keep-alive traffic), connects, and then sleeps until SIGTERM or SIGINT. It sends nothing
 * and prints nothing (errors aside). Its peak RSS, private dirty memory and CPU are what any
 * agent built on these libraries costs before it does any work; the benchmark reports the
 * agent's figures beside it.
 *
 *   ww_floor ENDPOINT SERVER_PUB_FILE KEY_FILE
 *   ww_floor ENDPOINT --insecure
 *
 * Exit status: 0 after a signal, 2 on bad arguments or keys, 1 when ZeroMQ fails.
 */
#include "ww_curve.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

int main(int argc, char **argv)
{
    int insecure = argc == 3 && strcmp(argv[2], "--insecure") == 0;
    if (argc != 4 && !insecure) {
        fprintf(stderr,
                "usage: ww_floor ENDPOINT SERVER_PUB_FILE KEY_FILE | ENDPOINT --insecure\n");
        return 2;
    }
    ww_curve_key_t server, own;
    memset(&server, 0, sizeof server);
    memset(&own, 0, sizeof own);
    char why[256];
    if (!insecure && (ww_curve_load(argv[2], 0, &server, why, sizeof why) < 0 ||
                      ww_curve_load(argv[3], 1, &own, why, sizeof why) < 0)) {
        fprintf(stderr, "ww_floor: %s\n", why);
        return 2;
    }

    /* Block the stop signals before ZeroMQ starts its I/O thread, so that only sigwait()
     * below ever receives them. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    int rc = 1;
    void *ctx = zmq_ctx_new();
    void *sock = ctx ? zmq_socket(ctx, ZMQ_DEALER) : NULL;
    if (!sock) {
        fprintf(stderr, "ww_floor: zmq: %s\n", zmq_strerror(errno));
        goto cleanup;
    }
    /* The agent link's options (agent/ww_link.c). */
    int zero = 0, one = 1;
    int hb_ivl = 2000, hb_timeout = 6000, rc_ivl = 100, rc_max = 2000;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof one);
    zmq_setsockopt(sock, ZMQ_HEARTBEAT_IVL, &hb_ivl, sizeof hb_ivl);
    zmq_setsockopt(sock, ZMQ_HEARTBEAT_TIMEOUT, &hb_timeout, sizeof hb_timeout);
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL, &rc_ivl, sizeof rc_ivl);
    zmq_setsockopt(sock, ZMQ_RECONNECT_IVL_MAX, &rc_max, sizeof rc_max);
    if (!insecure &&
        (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server.public_z85, WW_Z85_KEY_LEN) != 0 ||
         zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, own.public_z85, WW_Z85_KEY_LEN) != 0 ||
         zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, own.secret_z85, WW_Z85_KEY_LEN) != 0)) {
        fprintf(stderr, "ww_floor: CURVE: %s\n", zmq_strerror(errno));
        goto cleanup;
    }
    memset(own.secret_z85, 0, sizeof own.secret_z85);
    if (zmq_connect(sock, argv[1]) != 0) {
        fprintf(stderr, "ww_floor: connect %s: %s\n", argv[1], zmq_strerror(errno));
        goto cleanup;
    }
    int sig = 0;
    while (sigwait(&stop, &sig) != 0) {
    }
    rc = 0;

cleanup:
    if (sock) {
        zmq_close(sock);
    }
    if (ctx) {
        zmq_ctx_term(ctx);
    }
    return rc;
}

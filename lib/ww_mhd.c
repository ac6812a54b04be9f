/* ww_mhd: see ww_mhd.h. */
#define WW_LOG_MODULE "http"
#include "ww_mhd.h"

#include "ww_dl.h"
#include "ww_log.h"
#include "ww_metrics.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Every function of the table, by the name dlsym looks up. */
#define SYM(fn, field)                                                                             \
    {                                                                                              \
#fn, offsetof(ww_mhd_t, field)                                                             \
    }
static const ww_dl_sym_t s_syms[] = {
    SYM(MHD_start_daemon, start_daemon),
    SYM(MHD_stop_daemon, stop_daemon),
    SYM(MHD_create_response_from_buffer, create_response_from_buffer),
    SYM(MHD_add_response_header, add_response_header),
    SYM(MHD_queue_response, queue_response),
    SYM(MHD_destroy_response, destroy_response),
    SYM(MHD_lookup_connection_value, lookup_connection_value),
};
#undef SYM
_Static_assert(sizeof s_syms / sizeof s_syms[0] ==
                   (sizeof(ww_mhd_t) - sizeof(void *)) / sizeof(void (*)(void)),
               "every function pointer of ww_mhd_t has its line in s_syms");

int ww_mhd_open(ww_mhd_t *api, const char *soname, char *why, size_t why_cap)
{
    memset(api, 0, sizeof *api);
    char reason[400];
    int rc = ww_dl_open(&api->handle, soname, s_syms, sizeof s_syms / sizeof s_syms[0], api, reason,
                        sizeof reason);
    if (rc < 0) {
        memset(api, 0, sizeof *api);
        snprintf(why, why_cap, "%s (install " WW_MHD_PACKAGE ")", reason);
    }
    return rc;
}

void ww_mhd_close(ww_mhd_t *api)
{
    if (api->handle) {
        dlclose(api->handle);
    }
    memset(api, 0, sizeof *api);
}

/* The process-wide table. It is never unloaded: a server thread may still be running code
 * of it at exit, and unloading it would save nothing a process keeps. */
static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static ww_mhd_t s_api;
static int s_rc;
static char s_why[512];

static void s_load(void)
{
    s_rc = ww_mhd_open(&s_api, WW_MHD_SONAME, s_why, sizeof s_why);
}

const ww_mhd_t *ww_mhd_get(char *why, size_t why_cap)
{
    pthread_once(&s_once, s_load);
    if (s_rc < 0) {
        snprintf(why, why_cap, "%s", s_why);
        return NULL;
    }
    return &s_api;
}

/* libmicrohttpd's own errors (MHD_USE_ERROR_LOG), one log line each. */
static __attribute__((format(printf, 2, 0))) void s_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    WW_WARN("%s", msg);
}

static void s_addr_text(const struct sockaddr_storage *a, char *out, size_t cap, unsigned *port)
{
    if (a->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
        inet_ntop(AF_INET6, &a6->sin6_addr, out, (socklen_t)cap);
        *port = ntohs(a6->sin6_port);
    } else {
        const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
        inet_ntop(AF_INET, &a4->sin_addr, out, (socklen_t)cap);
        *port = ntohs(a4->sin_port);
    }
}

struct MHD_Daemon *ww_mhd_serve(const ww_mhd_t *mhd, const char *address,
                                MHD_AccessHandlerCallback handler, void *arg,
                                MHD_RequestCompletedCallback done, unsigned max_conns,
                                unsigned timeout_s, char *addr, size_t addr_cap, unsigned *port,
                                char *why, size_t why_cap)
{
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    if (ww_metrics_parse_listen(address, &sa, &salen, why, why_cap) < 0) {
        return NULL;
    }
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0) {
        snprintf(why, why_cap, "%s: cannot create a socket: %s", address, strerror(errno));
        return NULL;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, salen) != 0 || listen(fd, 64) != 0) {
        snprintf(why, why_cap, "%s: cannot bind: %s", address, strerror(errno));
        close(fd);
        return NULL;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    snprintf(addr, addr_cap, "?");
    *port = 0;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) == 0) {
        s_addr_text(&bound, addr, addr_cap, port);
    }
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    struct MHD_Daemon *d =
        mhd->start_daemon(MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG |
                              (sa.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0),
                          0, NULL, NULL, handler, arg, MHD_OPTION_EXTERNAL_LOGGER, s_mhd_log, NULL,
                          MHD_OPTION_LISTEN_SOCKET, (MHD_socket)fd, MHD_OPTION_CONNECTION_LIMIT,
                          max_conns, MHD_OPTION_CONNECTION_TIMEOUT, timeout_s,
                          MHD_OPTION_NOTIFY_COMPLETED, done, arg, MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!d) {
        snprintf(why, why_cap, "%s: cannot start the HTTP server (libmicrohttpd)", address);
        close(fd);
    }
    return d;
}

/* ww_mhd: libmicrohttpd, loaded at run time.
 *
 * Linking libmicrohttpd pulls gnutls, nettle, hogweed, gmp, p11-kit, tasn1, idn2, ... into
 * every process, and their relocations cost each agent ~0.4 MB of private dirty memory
 * even though the HTTP server (metrics.listen) is off by default. So no binary links it:
 * ww_metrics_server_new loads it with dlopen (RTLD_NOW | RTLD_LOCAL) when a server starts,
 * and a process without metrics.listen never maps it. <microhttpd.h> is still used at build
 * time, for the types, the constants and the prototypes the table below is checked against.
 *
 * The table holds exactly the functions the servers call (ww_metrics.c, the agent's OTLP
 * receiver); every one must resolve. */
#ifndef WW_MHD_H
#define WW_MHD_H

#include <stddef.h>

#include <microhttpd.h>

/* The soname dlopen asks for, and the Debian package that ships it: the one place both are
 * spelled in C. Soname 12 is what 0.9.71 (the first with enum MHD_Result, which
 * ww_metrics.c uses) and every later 0.9.x install. Headers of another series may go with
 * another soname, so the build stops rather than load a library these headers may not
 * describe: then check the new soname, update it here and the Depends of the agent and
 * collector packages (cmake/packaging.cmake). */
#define WW_MHD_SONAME "libmicrohttpd.so.12"
#define WW_MHD_PACKAGE "libmicrohttpd12"
#if !defined(MHD_VERSION) || MHD_VERSION < 0x00097100 || MHD_VERSION >= 0x00100000
#error "microhttpd.h is not 0.9.71..0.9.x: check WW_MHD_SONAME and the packages' Depends"
/* Binds address (as ww_metrics_parse_listen reads it) on a socket of our own, so that a
 * failed bind says why (libmicrohttpd only says it failed), and starts a daemon serving it
 * with handler(arg, ...) on one internal thread that takes no signals (SIGTERM and SIGHUP
 * are the main thread's), libmicrohttpd's errors logged, at most max_conns connections,
 * each closed after timeout_s idle; done (NULL: none) is its MHD_OPTION_NOTIFY_COMPLETED.
 * Fills addr (the bound address as text, INET6_ADDRSTRLEN) and *port. Returns the daemon
 * (stop_daemon closes the socket too), or NULL with the reason in why. */
struct MHD_Daemon *ww_mhd_serve(const ww_mhd_t *mhd, const char *address,
                                MHD_AccessHandlerCallback handler, void *arg,
                                MHD_RequestCompletedCallback done, unsigned max_conns,
                                unsigned timeout_s, char *addr, size_t addr_cap, unsigned *port,
                                char *why, size_t why_cap);

#endif

typedef struct ww_mhd {
    void *handle; /* from dlopen */
    __typeof__(MHD_start_daemon) *start_daemon;
    __typeof__(MHD_stop_daemon) *stop_daemon;
    __typeof__(MHD_create_response_from_buffer) *create_response_from_buffer;
    __typeof__(MHD_add_response_header) *add_response_header;
    __typeof__(MHD_queue_response) *queue_response;
    __typeof__(MHD_destroy_response) *destroy_response;
    __typeof__(MHD_lookup_connection_value) *lookup_connection_value;
} ww_mhd_t;

/* Loads `soname` and resolves every function of the table into *api. Returns 0; or -ENOENT
 * when the library cannot be loaded or lacks a function, with a reason in why naming the
 * library, dlerror() and the package to install ("cannot load libmicrohttpd.so.12: ...
 * (install libmicrohttpd12)"); *api is then zeroed and nothing stays loaded. Production
 * code calls ww_mhd_get; this form exists so that tests can name a library. */
int ww_mhd_open(ww_mhd_t *api, const char *soname, char *why, size_t why_cap);

/* Unloads what ww_mhd_open loaded (dlclose) and zeroes *api; safe on a zeroed table. Never
 * for the table ww_mhd_get returns. */
void ww_mhd_close(ww_mhd_t *api);

/* The process-wide table of WW_MHD_SONAME, loaded on the first call (any thread: once,
 * under pthread_once) and kept for the life of the process. Returns it, or NULL with the
 * reason of ww_mhd_open in why (every call after a failure gives the same reason). */
const ww_mhd_t *ww_mhd_get(char *why, size_t why_cap);

/* Binds address (as ww_metrics_parse_listen reads it) on a socket of our own, so that a
 * failed bind says why (libmicrohttpd only says it failed), and starts a daemon serving it
 * with handler(arg, ...) on one internal thread that takes no signals (SIGTERM and SIGHUP
 * are the main thread's), libmicrohttpd's errors logged, at most max_conns connections,
 * each closed after timeout_s idle; done (NULL: none) is its MHD_OPTION_NOTIFY_COMPLETED.
 * Fills addr (the bound address as text, INET6_ADDRSTRLEN) and *port. Returns the daemon
 * (stop_daemon closes the socket too), or NULL with the reason in why. */
struct MHD_Daemon *ww_mhd_serve(const ww_mhd_t *mhd, const char *address,
                                MHD_AccessHandlerCallback handler, void *arg,
                                MHD_RequestCompletedCallback done, unsigned max_conns,
                                unsigned timeout_s, char *addr, size_t addr_cap, unsigned *port,
                                char *why, size_t why_cap);

#endif

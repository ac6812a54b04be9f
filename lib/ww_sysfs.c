/* ww_sysfs: see ww_sysfs.h. */
#include "ww_sysfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The longest class entry taken ("hwmon12", "intel-rapl:0:1", "intel-rapl-mmio:0"): no
 * kernel name comes near it; a longer one is left out rather than cut. */
#define S_ENTRY_MAX 63

/* A growing list of sensors. */
typedef struct {
    ww_sysfs_sensor_t *v;
    size_t n, cap;
} s_list_t;

/* path = a "/" b ["/" c]; false when it does not fit (the entry is left out). */
static bool s_join(char *path, size_t cap, const char *a, const char *b, const char *c)
{
    int w = c ? snprintf(path, cap, "%s/%s/%s", a, b, c) : snprintf(path, cap, "%s/%s", a, b);
    return w > 0 && (size_t)w < cap;
}

/* Reads a small sysfs file (one value) into buf, NUL-terminated, trailing whitespace cut.
 * Returns its length or a negative errno (-EINVAL: empty, or too long for a value). */
static int s_read_text(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -errno;
    }
    size_t len = 0;
    for (;;) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            int rc = -errno;
            close(fd);
            return rc;
        }
        len += (size_t)r;
        if (r == 0 || len == cap - 1) {
            break;
        }
    }
    close(fd);
    if (len == cap - 1) {
        return -EINVAL; /* a value file is a line; this is not one */
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ' || buf[len - 1] == '\t')) {
        len--;
    }
    buf[len] = '\0';
    return len > 0 ? (int)len : -EINVAL;
}

/* Reads a decimal integer file (hwmon values may be negative). */
static int s_read_i64(const char *path, int64_t *v)
{
    char buf[64];
    int rc = s_read_text(path, buf, sizeof buf);
    if (rc < 0) {
        return rc;
    }
    char *end;
    errno = 0;
    long long x = strtoll(buf, &end, 10);
    if (errno != 0 || *end != '\0' || end == buf) {
        return -EINVAL;
    }
    *v = x;
    return 0;
}

/* Reads an unsigned decimal counter file (energy_uj, max_energy_range_uj). */
static int s_read_u64(const char *path, uint64_t *v)
{
    char buf[64];
    int rc = s_read_text(path, buf, sizeof buf);
    if (rc < 0) {
        return rc;
    }
    if (buf[0] < '0' || buf[0] > '9') {
        return -EINVAL; /* strtoull takes "-1" as 2^64 - 1 */
    }
    char *end;
    errno = 0;
    unsigned long long x = strtoull(buf, &end, 10);
    if (errno != 0 || *end != '\0') {
        return -EINVAL;
    }
    *v = x;
    return 0;
}

static ww_sysfs_sensor_t *s_add(s_list_t *l)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        ww_sysfs_sensor_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            return NULL;
        }
        l->v = v;
        l->cap = cap;
    }
    ww_sysfs_sensor_t *s = &l->v[l->n++];
    memset(s, 0, sizeof *s);
    s->crit = NAN;
    return s;
}

/* The stem of a hwmon value attribute: "temp3" of "temp3_input", "power1" of
 * "power1_input" or (when there is no power1_input) "power1_average". Returns its kind, or -1
 * when the file is not one. */
static int s_hwmon_stem(const char *dir, const char *file, char *stem, size_t cap)
{
    static const struct {
        const char *prefix, *suffix;
        ww_sysfs_kind_t kind;
    } k[] = {{"temp", "_input", WW_SYSFS_TEMP},
             {"power", "_input", WW_SYSFS_POWER},
             {"power", "_average", WW_SYSFS_POWER}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++) {
        size_t p = strlen(k[i].prefix), len = strlen(file), sl = strlen(k[i].suffix);
        if (strncmp(file, k[i].prefix, p) != 0 || len <= p + sl ||
            strcmp(file + len - sl, k[i].suffix) != 0 || len - sl >= cap) {
            continue;
        }
        size_t d = p;
        while (d < len - sl && file[d] >= '0' && file[d] <= '9') {
            d++;
        }
        if (d == p || d != len - sl) {
            continue;
        }
        memcpy(stem, file, len - sl);
        stem[len - sl] = '\0';
        char input[WW_SYSFS_PATH_MAX], other[96];
        snprintf(other, sizeof other, "%s_input", stem);
        if (strcmp(k[i].suffix, "_average") == 0 && s_join(input, sizeof input, dir, other, NULL) &&
            access(input, F_OK) == 0) {
            continue; /* power1_input is the one taken */
        }
        return (int)k[i].kind;
    }
    return -1;
}

/* The sensors of one attribute directory of hwmon chip `entry` (named chip). */
static int s_hwmon_dir(s_list_t *l, const char *dir, const char *entry, const char *chip,
                       size_t first)
{
    DIR *d = opendir(dir);
    if (!d) {
        return 0;
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        char stem[64], place[WW_SYSFS_NAME_MAX], path[WW_SYSFS_PATH_MAX];
        int kind = s_hwmon_stem(dir, de->d_name, stem, sizeof stem);
        if (kind < 0 || !s_join(path, sizeof path, dir, de->d_name, NULL) ||
            !s_join(place, sizeof place, entry, stem, NULL)) {
            continue;
        }
        bool seen = false; /* the same attribute in hwmonN/ and hwmonN/device/ */
        for (size_t i = first; i < l->n; i++) {
            seen = seen || strcmp(l->v[i].place, place) == 0;
        }
        if (seen) {
            continue;
        }
        char label[128], file[96], lpath[WW_SYSFS_PATH_MAX];
        snprintf(file, sizeof file, "%s_label", stem);
        if (!s_join(lpath, sizeof lpath, dir, file, NULL) ||
            s_read_text(lpath, label, sizeof label) < 0) {
            snprintf(label, sizeof label, "%s", stem);
        }
        ww_sysfs_sensor_t *s = s_add(l);
        if (!s) {
            rc = -ENOMEM;
            break;
        }
        s->kind = (ww_sysfs_kind_t)kind;
        snprintf(s->place, sizeof s->place, "%s", place);
        snprintf(s->path, sizeof s->path, "%s", path);
        if (snprintf(s->name, sizeof s->name, "hwmon/%s/%s", chip, label) >= (int)sizeof s->name) {
            snprintf(s->name, sizeof s->name, "%s", place);
        }
        int64_t crit;
        snprintf(file, sizeof file, "%s_crit", stem);
        if (s_join(lpath, sizeof lpath, dir, file, NULL) && s_read_i64(lpath, &crit) == 0) {
            s->crit = (double)crit / (kind == WW_SYSFS_TEMP ? 1e3 : 1e6);
        }
    }
    closedir(d);
    return rc;
}

/* The sensors of hwmon chip `entry` of the class directory. */
static int s_hwmon_chip(s_list_t *l, const char *class, const char *entry)
{
    char base[WW_SYSFS_PATH_MAX], dev[WW_SYSFS_PATH_MAX], path[WW_SYSFS_PATH_MAX];
    char chip[64];
    if (strncmp(entry, "hwmon", 5) != 0 || !s_join(base, sizeof base, class, entry, NULL) ||
        !s_join(dev, sizeof dev, base, "device", NULL)) {
        return 0;
    }
    /* The chip's name is in hwmonN/ or, for older drivers, in hwmonN/device/. */
    if (!(s_join(path, sizeof path, base, "name", NULL) &&
          s_read_text(path, chip, sizeof chip) >= 0) &&
        !(s_join(path, sizeof path, dev, "name", NULL) &&
          s_read_text(path, chip, sizeof chip) >= 0)) {
        snprintf(chip, sizeof chip, "%.63s", entry); /* S_ENTRY_MAX */
    }
    size_t first = l->n;
    int rc = s_hwmon_dir(l, base, entry, chip, first);
    return rc == 0 ? s_hwmon_dir(l, dev, entry, chip, first) : rc;
}

/* A powercap zone's name, read from <class>/<zone>/name. */
static int s_zone_name(const char *class, const char *zone, char *name, size_t cap)
{
    char path[WW_SYSFS_PATH_MAX];
    return s_join(path, sizeof path, class, zone, "name") ? s_read_text(path, name, cap)
                                                          : -ENAMETOOLONG;
}

/* The energy counter of powercap zone `entry` of the class directory, if it has one. */
static int s_powercap_zone(s_list_t *l, const char *class, const char *entry)
{
    char path[WW_SYSFS_PATH_MAX], name[64], parent[128], pname[64];
    if (!s_join(path, sizeof path, class, entry, "energy_uj") || access(path, F_OK) != 0 ||
        s_zone_name(class, entry, name, sizeof name) < 0) {
        return 0; /* a control type ("intel-rapl") or a zone without a counter */
    }
    ww_sysfs_sensor_t *s = s_add(l);
    if (!s) {
        return -ENOMEM;
    }
    s->kind = WW_SYSFS_ENERGY;
    snprintf(s->path, sizeof s->path, "%s", path);
    snprintf(s->place, sizeof s->place, "powercap/%.63s", entry); /* S_ENTRY_MAX */
    /* A subzone's directory is its parent's plus ":K" (intel-rapl:0:1 in intel-rapl:0). */
    snprintf(parent, sizeof parent, "%.63s", entry);
    char *colon = strrchr(parent, ':');
    if (colon) {
        *colon = '\0';
    }
    if (colon && strchr(parent, ':') && s_zone_name(class, parent, pname, sizeof pname) >= 0) {
        snprintf(s->name, sizeof s->name, "powercap/%s/%s", pname, name);
    } else {
        snprintf(s->name, sizeof s->name, "powercap/%s", name);
    }
    if (!s_join(path, sizeof path, class, entry, "max_energy_range_uj") ||
        s_read_u64(path, &s->range_uj) < 0) {
        s->range_uj = 0;
    }
    return 0;
}

/* Calls each(l, class directory, entry) for every entry of root/sys/class/<cls> (none when
 * it is missing), until one fails. */
static int s_scan_class(s_list_t *l, const char *root, const char *cls,
                        int (*each)(s_list_t *, const char *, const char *))
{
    char class[WW_SYSFS_PATH_MAX];
    if (!s_join(class, sizeof class, root, "sys/class", cls)) {
        return 0;
    }
    DIR *d = opendir(class);
    if (!d) {
        return 0;
    }
    struct dirent *de;
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.' && strlen(de->d_name) <= S_ENTRY_MAX) {
            rc = each(l, class, de->d_name);
        }
    }
    closedir(d);
    return rc;
}

static int s_cmp(const void *a, const void *b)
{
    const ww_sysfs_sensor_t *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->place, y->place);
}

int ww_sysfs_scan(const char *root, ww_sysfs_sensor_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (access(root, F_OK) != 0) {
        return -ENOENT;
    }
    s_list_t l = {0};
    int rc = s_scan_class(&l, root, "hwmon", s_hwmon_chip);
    if (rc == 0) {
        rc = s_scan_class(&l, root, "powercap", s_powercap_zone);
    }
    if (rc < 0) {
        free(l.v);
        return rc;
    }
    if (l.n > 1) {
        qsort(l.v, l.n, sizeof l.v[0], s_cmp);
    }
    *out = l.v;
    *n = l.n;
    return 0;
}

int ww_sysfs_find(const ww_sysfs_sensor_t *list, size_t n, const char *spec)
{
    int found = -ENOENT;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].place, spec) == 0) {
            return (int)i; /* a place is unique */
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i].name, spec) == 0) {
            if (found >= 0) {
                return -EEXIST;
            }
            found = (int)i;
        }
    }
    return found;
}

int ww_sysfs_read(const ww_sysfs_sensor_t *s, double *value)
{
    if (s->kind == WW_SYSFS_ENERGY) {
        return -EINVAL;
    }
    int64_t v;
    int rc = s_read_i64(s->path, &v);
    if (rc == 0) {
        *value = (double)v / (s->kind == WW_SYSFS_TEMP ? 1e3 : 1e6);
    }
    return rc;
}

int ww_sysfs_read_energy(const ww_sysfs_sensor_t *s, uint64_t *uj)
{
    return s->kind == WW_SYSFS_ENERGY ? s_read_u64(s->path, uj) : -EINVAL;
}

int ww_sysfs_energy_watts(ww_sysfs_energy_t *e, uint64_t uj, uint64_t range_uj, int64_t now_ns,
                          double *watts)
{
    if (e->primed && now_ns <= e->last_ns) {
        return -EINVAL;
    }
    int rc = 0;
    uint64_t delta = 0;
    if (!e->primed) {
        rc = -EAGAIN;
    } else if (uj >= e->last_uj) {
        delta = uj - e->last_uj;
    } else if (range_uj > 0 && e->last_uj <= range_uj && uj <= range_uj) {
        delta = range_uj - e->last_uj + uj; /* wrapped once */
    } else {
        rc = -ERANGE;
    }
    if (rc == 0) {
        /* uJ per ns is kW. */
        *watts = (double)delta * 1e3 / (double)(now_ns - e->last_ns);
    }
    e->last_uj = uj;
    e->last_ns = now_ns;
    e->primed = 1;
    return rc;
}

/* yaml_paths: parse Kubernetes manifests with libyaml and print every scalar as one line,
 * so that a shell test can check them with grep.
 *
 *   yaml_paths FILE...                 every document: "Kind/name path=value" per scalar
 *   yaml_paths --get KIND/NAME PATH FILE...   the raw value of one scalar (e.g. a ConfigMap's
 *                                      embedded agent.yaml), exit 1 when absent
 *
 * Paths join mapping keys with '.' and sequence items as [i], e.g.
 * spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem. Newlines in values
 * print as \n. Refused, with FILE:LINE:COLUMN, exit 1: a YAML syntax error, a duplicate
 * mapping key (Kubernetes refuses those too), a non-scalar key, a document without
 * apiVersion and kind, or without metadata.name (except a Kustomization).
 *
 * Only libyaml (already a build dependency): a CI machine with Debian packages alone has
 * neither kubectl nor python3-yaml. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct {
    const char *file;
    const char *get_id;   /* --get: "Kind/name", else NULL */
    const char *get_path; /* --get: the path */
    int found;
} s_ctx_t;

static const char *s_scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* The value node of `key` in a mapping, or NULL. */
static yaml_node_t *s_lookup(yaml_document_t *doc, yaml_node_t *map, const char *key)
{
    if (!map || map->type != YAML_MAPPING_NODE) {
        return NULL;
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        const char *k = s_scalar(yaml_document_get_node(doc, p->key));
        if (k && strcmp(k, key) == 0) {
            return yaml_document_get_node(doc, p->value);
        }
    }
    return NULL;
}

static int s_fail(const s_ctx_t *c, const yaml_node_t *n, const char *what, const char *detail)
{
    fprintf(stderr, "%s:%lu:%lu: %s%s%s\n", c->file, n ? (unsigned long)n->start_mark.line + 1 : 0,
            n ? (unsigned long)n->start_mark.column + 1 : 0, what, detail ? ": " : "",
            detail ? detail : "");
    return -1;
}

static void s_print_value(const char *v)
{
    for (; *v; v++) {
        if (*v == '\n') {
            fputs("\\n", stdout);
        } else {
            putchar(*v);
        }
    }
}

static int s_walk(s_ctx_t *c, yaml_document_t *doc, yaml_node_t *n, const char *id, char *path,
                  size_t len, size_t cap)
{
    if (!n) {
        return 0;
    }
    if (n->type == YAML_SCALAR_NODE) {
        const char *v = s_scalar(n);
        if (c->get_id) {
            if (strcmp(id, c->get_id) == 0 && strcmp(path, c->get_path) == 0) {
                fputs(v, stdout);
                c->found = 1;
            }
        } else {
            printf("%s %s=", id, path);
            s_print_value(v);
            putchar('\n');
        }
        return 0;
    }
    if (n->type == YAML_SEQUENCE_NODE) {
        int i = 0;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++, i++) {
            int w = snprintf(path + len, cap - len, "[%d]", i);
            if (w < 0 || (size_t)w >= cap - len) {
                return s_fail(c, n, "path too long", path);
            }
            if (s_walk(c, doc, yaml_document_get_node(doc, *it), id, path, len + (size_t)w, cap) <
                0) {
                return -1;
            }
            path[len] = '\0';
        }
        return 0;
    }
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(doc, p->key);
        const char *k = s_scalar(kn);
        if (!k) {
            return s_fail(c, kn, "mapping key is not a scalar", path);
        }
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
            const char *k2 = s_scalar(yaml_document_get_node(doc, q->key));
            if (k2 && strcmp(k, k2) == 0) {
                return s_fail(c, kn, "duplicate key", k);
            }
        }
        int w = snprintf(path + len, cap - len, "%s%s", len ? "." : "", k);
        if (w < 0 || (size_t)w >= cap - len) {
            return s_fail(c, kn, "path too long", path);
        }
        if (s_walk(c, doc, yaml_document_get_node(doc, p->value), id, path, len + (size_t)w, cap) <
            0) {
            return -1;
        }
        path[len] = '\0';
    }
    return 0;
}

/* Parses every document of one file. Returns 0 or -1 (reported). */
static int s_file(s_ctx_t *c)
{
    FILE *f = fopen(c->file, "rb");
    if (!f) {
        perror(c->file);
        return -1;
    }
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    int rc = 0, docs = 0;
    for (;;) {
        yaml_document_t doc;
        if (!yaml_parser_load(&parser, &doc)) {
            fprintf(stderr, "%s:%lu:%lu: %s %s\n", c->file,
                    (unsigned long)parser.problem_mark.line + 1,
                    (unsigned long)parser.problem_mark.column + 1,
                    parser.problem ? parser.problem : "YAML error",
                    parser.context ? parser.context : "");
            rc = -1;
            break;
        }
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root) { /* end of the stream */
            yaml_document_delete(&doc);
            break;
        }
        docs++;
        const char *kind = s_scalar(s_lookup(&doc, root, "kind"));
        const char *api = s_scalar(s_lookup(&doc, root, "apiVersion"));
        const char *name = s_scalar(s_lookup(&doc, s_lookup(&doc, root, "metadata"), "name"));
        char id[512], path[4096] = "";
        if (root->type != YAML_MAPPING_NODE || !kind || !api) {
            rc = s_fail(c, root, "a document without apiVersion and kind", NULL);
        } else if (!name && strcmp(kind, "Kustomization") != 0) {
            rc = s_fail(c, root, "a document without metadata.name", kind);
        } else {
            snprintf(id, sizeof id, "%s/%s", kind, name ? name : "-");
            rc = s_walk(c, &doc, root, id, path, 0, sizeof path);
        }
        yaml_document_delete(&doc);
        if (rc < 0) {
            break;
        }
    }
    yaml_parser_delete(&parser);
    fclose(f);
    if (rc == 0 && docs == 0) {
        fprintf(stderr, "%s: no YAML documents\n", c->file);
        rc = -1;
    }
    return rc;
}

int main(int argc, char **argv)
{
    s_ctx_t c = {0};
    int i = 1;
    if (argc > 3 && strcmp(argv[1], "--get") == 0) {
        c.get_id = argv[2];
        c.get_path = argv[3];
        i = 4;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: yaml_paths [--get KIND/NAME PATH] FILE...\n");
        return 2;
    }
    for (; i < argc; i++) {
        c.file = argv[i];
        if (s_file(&c) < 0) {
            return 1;
        }
    }
    if (c.get_id && !c.found) {
        fprintf(stderr, "yaml_paths: %s has no %s\n", c.get_id, c.get_path);
        return 1;
    }
    return 0;
}

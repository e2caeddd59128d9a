/* cli_ops.c - `loupe ops` and `loupe gradcheck`. */
#include "cli.h"

#include "gradcheck.h"
#include "registry.h"
#include "shape.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_ops(int argc, char **argv)
{
    cli_common c = {0};
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            printf("usage: loupe ops [--plugin PATH]... [--json]\n\n"
                   "List every registered op: where it comes from (built-in or a plugin\n"
                   "path), how many inputs it takes, and its attributes with defaults.\n");
            return 0;
        }
        int r = cli_common_option("ops", argc, argv, &i, &c);
        if (r < 0) return 2;
        if (r == 0) return cli_usage_error("ops", "unexpected argument '%s'", argv[i]);
    }
    lp_error err = {0};
    lp_registry_init();
    if (cli_load_plugins(&c, &err)) return cli_fail(&err);
    if (c.json) printf("[");
    for (int i = 0; i < lp_op_count(); i++) {
        const char *origin;
        const lp_op *op = lp_op_at(i, &origin);
        if (c.json) {
            printf("%s{\"name\":\"%s\",\"origin\":\"%s\",\"min_inputs\":%d,\"max_inputs\":%d,\"attrs\":[",
                   i ? "," : "", op->name, origin, op->min_inputs, op->max_inputs);
            for (const lp_attr_doc *a = op->attrs; a && a->name; a++)
                printf("%s{\"name\":\"%s\",\"type\":\"%s\",\"default\":%s%s%s}", a == op->attrs ? "" : ",",
                       a->name, a->type ? a->type : "", a->default_value ? "\"" : "",
                       a->default_value ? a->default_value : "null", a->default_value ? "\"" : "");
            printf("]}");
            continue;
        }
        printf("%-24s %s\n", op->name, op->summary ? op->summary : "");
        if (op->min_inputs == op->max_inputs)
            printf("    from %s; %d input%s\n", origin, op->min_inputs, op->min_inputs == 1 ? "" : "s");
        else
            printf("    from %s; %d to %d inputs\n", origin, op->min_inputs, op->max_inputs);
        for (const lp_attr_doc *a = op->attrs; a && a->name; a++)
            printf("    %-10s %-16s %-18s %s\n", a->name, a->type ? a->type : "",
                   a->default_value ? a->default_value : "(required)", a->help ? a->help : "");
    }
    if (c.json) printf("]\n");
    return 0;
}

/* "k=v" or "k=[a,b]" into map. */
static int add_attr(lp_value *map, const char *kv)
{
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) return -1;
    char key[128];
    size_t klen = (size_t)(eq - kv);
    if (klen >= sizeof key) return -1;
    memcpy(key, kv, klen);
    key[klen] = '\0';
    const char *v = eq + 1;
    lp_loc loc = {.file = "--attr"};
    lp_value *val;
    if (v[0] == '[') {
        val = lp_value_new_list(loc);
        char buf[256];
        snprintf(buf, sizeof buf, "%s", v + 1);
        char *end = strchr(buf, ']');
        if (end) *end = '\0';
        for (char *tok = strtok(buf, ", "); tok && val; tok = strtok(NULL, ", "))
            if (lp_value_list_push(val, lp_value_new_scalar(tok, loc))) val = NULL;
    } else {
        val = lp_value_new_scalar(v, loc);
    }
    return lp_value_map_set(map, key, loc, val);
}

static bool parse_shape(const char *s, lp_shape *out)
{
    lp_shape sh = {0};
    char buf[128];
    snprintf(buf, sizeof buf, "%s", s);
    for (char *tok = strtok(buf, ",x "); tok; tok = strtok(NULL, ",x ")) {
        long long v;
        if (sh.ndim == 3 || !cli_parse_int(tok, 1, 4096, &v)) return false;
        sh.dims[sh.ndim++] = (int)v;
    }
    *out = sh;
    return sh.ndim > 0;
}

int cli_gradcheck(int argc, char **argv)
{
    cli_common c = {0};
    const char *op = NULL;
    lp_shape shape = lp_shape3(3, 7, 7);
    bool shape_given = false;
    long long seed = 1;
    double tol = 1e-2;
    lp_value *attrs = lp_value_new_map((lp_loc){.file = "--attr"});
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (cli_is_help(a)) {
            printf("usage: loupe gradcheck --op NAME [--plugin PATH]... [--shape C,H,W]\n"
                   "                       [--attr key=value]... [--seed N] [--tolerance T]\n\n"
                   "Compare the op's backward (input and parameter gradients) with central\n"
                   "finite differences of its forward, on random data (batch 2). Kinks are\n"
                   "skipped. Required attributes not given are set to 2. Default shape 3,7,7\n"
                   "(or 12 for ops that need a flat input). Exit 0 on pass, 1 on fail.\n");
            lp_value_free(attrs);
            return 0;
        }
        int r = cli_common_option("gradcheck", argc, argv, &i, &c);
        if (r < 0) rc = 2;
        else if (r == 1) continue;
        else if (i + 1 >= argc) rc = cli_usage_error("gradcheck", "unexpected argument '%s'", a);
        else if (!strcmp(a, "--op")) op = argv[++i];
        else if (!strcmp(a, "--shape")) {
            shape_given = true;
            if (!parse_shape(argv[++i], &shape))
                rc = cli_usage_error("gradcheck", "--shape expects 1 to 3 sizes like 3,8,8");
        } else if (!strcmp(a, "--attr")) {
            if (add_attr(attrs, argv[++i]))
                rc = cli_usage_error("gradcheck", "--attr expects key=value, got '%s'", argv[i]);
        } else if (!strcmp(a, "--seed")) {
            if (!cli_parse_int(argv[++i], 0, 1LL << 62, &seed)) rc = cli_usage_error("gradcheck", "bad --seed");
        } else if (!strcmp(a, "--tolerance")) {
            tol = atof(argv[++i]);
            if (!(tol > 0)) rc = cli_usage_error("gradcheck", "--tolerance expects a positive number");
        } else rc = cli_usage_error("gradcheck", "unexpected argument '%s'", a);
    }
    if (!rc && !op) rc = cli_usage_error("gradcheck", "--op NAME is required");
    lp_error err = {0};
    if (!rc && cli_load_plugins(&c, &err)) rc = cli_fail(&err);
    const lp_op *desc = rc ? NULL : lp_op_find(op);
    if (!rc && !desc) {
        const char *hint = lp_did_you_mean(op, lp_op_names());
        fprintf(stderr, "loupe gradcheck: unknown op '%s'%s%s%s\n", op, hint ? "; did you mean '" : "",
                hint ? hint : "", hint ? "'?" : "");
        rc = 2;
    }
    if (rc) {
        lp_value_free(attrs);
        return rc;
    }
    for (const lp_attr_doc *a = desc->attrs; a && a->name; a++)
        if (!a->default_value && lp_value_find(attrs, a->name) < 0) {
            lp_value_map_set(attrs, a->name, (lp_loc){0}, lp_value_new_scalar("2", (lp_loc){0}));
            printf("(%s not given: using %s=2)\n", a->name, a->name);
        }
    lp_gradcheck_result res;
    lp_status s = lp_gradcheck_op(op, attrs, shape, (uint64_t)seed, 200, tol, &res, &err);
    if (s == LP_ERR_SHAPE && !shape_given) {
        lp_error_clear(&err);
        shape = lp_shape1(12);
        s = lp_gradcheck_op(op, attrs, shape, (uint64_t)seed, 200, tol, &res, &err);
    }
    lp_value_free(attrs);
    if (s) return cli_fail(&err);
    char buf[64];
    printf("op %s, input %s, batch 2: %d entries checked, %d kinks skipped, max relative error %.3g%s%s%s -> %s\n",
           op, lp_shape_str(shape, buf, sizeof buf), res.checked, res.skipped, res.max_rel_err,
           res.worst ? " (in " : "", res.worst ? res.worst : "", res.worst ? ")" : "",
           res.passed ? "PASS" : "FAIL");
    return res.passed ? 0 : 1;
}

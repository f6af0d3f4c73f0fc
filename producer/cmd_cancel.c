/* bx cancel — DELETE /v1/jobs/{id}. A job that already ended cannot be
 * cancelled (409): say so in words, with the state it ended in. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "event.h"

static void cancel_usage(FILE *f)
{
    fprintf(f,
            "usage: bx cancel [--json] ID\n"
            "\n"
            "Cancels job ID: a queued job never starts, a running one is killed with\n"
            "every process it started. Exits 2 when the job has already ended.\n");
}

int cmd_cancel(bx_cli *c, int argc, char **argv)
{
    const char *id;
    int rc;
    if (!cmd_plain_args(c, argc, argv, cancel_usage, 1, &id, &rc))
        return rc;
    char path[128], what[128];
    snprintf(path, sizeof path, "/v1/jobs/%s", id);
    snprintf(what, sizeof what, "cannot cancel job %s", id);
    http_resp r = {0};
    json_t *doc = NULL, *st = NULL;
    if ((rc = cli_request(c, "DELETE", path, NULL, 0, &r, &doc)))
        goto out;
    if (r.status == 409) {
        /* the API's word, and the state the job is in, which is what a
         * person wants to know next */
        http_resp s = {0};
        const char *state = NULL;
        if (!cli_request(c, "GET", path, NULL, 0, &s, &st) && s.status == 200)
            state = cli_str(st, "state");
        http_resp_release(&s);
        if (c->json && r.body)
            printf("%s\n", r.body);
        if (state && state_is_terminal(state))
            cli_err("%s: it has already ended (%s)", what, state);
        else
            cli_http_error(c, what, &r, doc);
        rc = EX_SERVER;
        goto out;
    }
    if (r.status < 200 || r.status > 299) {
        rc = cli_http_error(c, what, &r, doc);
        goto out;
    }
    if (c->json) {
        printf("%s\n", r.body ? r.body : "{}");
    } else {
        const char *state = cli_str(doc, "state");
        if (state && state_is_terminal(state))
            printf("%s %s\n", id, state);
        else
            printf("%s cancel requested%s%s\n", id, state ? ", was " : "", state ? state : "");
    }
out:
    json_decref(doc);
    json_decref(st);
    http_resp_release(&r);
    return rc;
}

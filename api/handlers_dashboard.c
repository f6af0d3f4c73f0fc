/* handlers_dashboard — serves the dashboard's files, built into the binary.
 *
 * .incbin paths are relative to the directory the compiler runs in, which
 * is the checkout's root (the Makefile runs there, so does the Compose
 * image's build). The Makefile makes this object depend on
 * the files of api/dashboard/, which -MMD cannot see. */
#include "handlers_dashboard.h"

#include <stdlib.h>
#include <string.h>

/* Defines sym[] (the file's bytes) and sym_end[] (one past them) in
 * .rodata, hidden: this object's own, reached PC-relative. A NUL follows
 * the end so that a debugger shows the text as a string. */
#define DASH_INCBIN(sym, file)                                                 \
    __asm__(".pushsection .rodata\n"                                           \
            ".balign 16\n"                                                     \
            ".globl " #sym "\n"                                                \
            ".hidden " #sym "\n" #sym ":\n"                                    \
            ".incbin \"" file "\"\n"                                           \
            ".globl " #sym "_end\n"                                            \
            ".hidden " #sym "_end\n" #sym "_end:\n"                            \
            ".byte 0\n"                                                        \
            ".popsection\n");                                                  \
    extern const char sym[] __attribute__((visibility("hidden")));             \
    extern const char sym##_end[] __attribute__((visibility("hidden")))

DASH_INCBIN(dash_index_html, "api/dashboard/index.html");
DASH_INCBIN(dash_app_js, "api/dashboard/app.js");
DASH_INCBIN(dash_style_css, "api/dashboard/style.css");

/* What the page may do: its own scripts and styles, calls to this API,
 * nothing else (a job's output is data, never markup; this says so to
 * the browser too). Kept under http_add_header's 159 bytes. */
#define DASH_CSP                                                                                   \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "                \
    "img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

int dashboard_find(const char *name, dashboard_asset *out)
{
    /* the lengths come from the linker's addresses: not constants to C,
     * so each call works them out */
    const struct {
        const char *name, *type, *start, *end;
    } files[] = {
        {"", "text/html; charset=utf-8", dash_index_html, dash_index_html_end},
        {"app.js", "text/javascript; charset=utf-8", dash_app_js, dash_app_js_end},
        {"style.css", "text/css; charset=utf-8", dash_style_css, dash_style_css_end},
    };
    if (!name)
        return -1;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        if (!strcmp(name, files[i].name)) {
            *out = (dashboard_asset){files[i].name, files[i].type, files[i].start,
                                     (size_t)(files[i].end - files[i].start)};
            return 0;
        }
    }
    return -1;
}

void handle_dashboard(http_req *req)
{
    dashboard_asset asset, *a = &asset;
    if (dashboard_find(req->r.job_id, a)) {
        http_reply_error(req, 404, "not_found", "no such file");
        return;
    }
    char *body = malloc(a->len ? a->len : 1);
    if (!body) {
        http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    memcpy(body, a->data, a->len);
    http_add_header(req, "Content-Security-Policy", DASH_CSP);
    /* small files: revalidating each load beats serving a stale page
     * after an upgrade */
    http_add_header(req, "Cache-Control", "no-cache");
    http_add_header(req, "X-Content-Type-Options", "nosniff");
    http_add_header(req, "Referrer-Policy", "no-referrer");
    http_reply(req, 200, a->content_type, body, a->len);
}

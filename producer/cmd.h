/* cmd — bx's subcommands. Each takes the shared client and its own
 * arguments (argv[0] is the subcommand's name) and returns bx's exit
 * code (cli.h). */
#ifndef BX_CMD_H
#define BX_CMD_H

#include <stdint.h>
#include <jansson.h>

#include "cli.h"

int cmd_submit(bx_cli *c, int argc, char **argv);   /* cmd_submit.c */
int cmd_status(bx_cli *c, int argc, char **argv);   /* cmd_status.c */
int cmd_output(bx_cli *c, int argc, char **argv);   /* cmd_status.c */
int cmd_wait(bx_cli *c, int argc, char **argv);     /* cmd_wait.c */
int cmd_cancel(bx_cli *c, int argc, char **argv);   /* cmd_cancel.c */
int cmd_history(bx_cli *c, int argc, char **argv);  /* cmd_history.c */
int cmd_workers(bx_cli *c, int argc, char **argv);  /* cmd_history.c */
int cmd_tail(bx_cli *c, int argc, char **argv);     /* cmd_tail.c */
int cmd_load(bx_cli *c, int argc, char **argv);     /* cmd_load.c */
int cmd_token(bx_cli *c, int argc, char **argv);    /* cmd_token.c */

/* Says what getopt_long (run with opterr = 0 and an optstring starting
 * with ':') found wrong in the arguments of subcommand cmd. Returns
 * EX_USAGE. */
int cmd_bad_option(const char *cmd, int opt, char **argv);

/* The arguments of the subcommands that take only --json, --help and
 * nargs (0 or 1) operands: status, cancel, tail, workers. 1 when the
 * subcommand goes on, with *operand the operand (or NULL); else 0 with
 * *exit the code to return (after --help, or a usage error). */
int cmd_plain_args(bx_cli *c, int argc, char **argv, void (*usage_fn)(FILE *), int nargs,
                   const char **operand, int *exit);

/* Waits until job id reaches a terminal state, or timeout_ms passes
 * (0 = no limit). 0 with *final (a new reference: the terminal status
 * document); EX_TIMED_OUT when bx gave up waiting (*final = the last
 * status seen, or NULL); EX_SERVER (said why) when the API failed. */
int wait_job(bx_cli *c, const char *id, int64_t timeout_ms, json_t **final);

/* Tells a person (or with --json a program) how job st ended: prints
 * the job's stdout and stderr to ours when with_output, the JSON
 * document with --json, a line on stderr when it did not succeed or its
 * output was cut. Returns the exit code the job calls for. */
int wait_report(bx_cli *c, json_t *st, int with_output);

/* The bytes of an answer of GET /v1/jobs/{id}/output that is JSON: the
 * first string of data, output, content, text or <stream>, decoded from
 * base64 when encoding or <stream>_encoding says so. New malloc'd *out;
 * 0, or -1 when there is none. (cmd_status.c) */
int output_decode(json_t *doc, const char *stream, char **out, size_t *len);

/* GET /v1/jobs/{id}/output?stream=S into *out (new malloc'd): the body
 * itself when it is not JSON, else output_decode's. 0, or EX_SERVER
 * after saying why. With c->json and print_json, also prints the
 * answer. (cmd_status.c) */
int output_fetch(bx_cli *c, const char *id, const char *stream, int print_json, char **out,
                 size_t *len);

#endif

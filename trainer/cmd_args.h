/* trainer/cmd_args.h — argument parsing shared by the commands that take a config file. */
#ifndef LORAFIT_CMD_ARGS_H
#define LORAFIT_CMD_ARGS_H

/* Consumes argv[*i] (and its value, advancing *i) as the CONFIG path or a --set KEY=VALUE
 * (also --set=KEY=VALUE). sets must have room for argc entries. Returns 0, or exit code 2
 * after printing what was wrong. */
int cmd_parse_config_args(const char *cmd, int argc, char **argv, int *i, const char **config,
                          const char **sets, int *n_sets);

#endif

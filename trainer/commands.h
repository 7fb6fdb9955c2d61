/* trainer/commands.h — one function per lorafit subcommand; each returns the process exit
 * code (0 ok, 1 runtime failure, 2 usage error) and prints its own errors. */
#ifndef LORAFIT_COMMANDS_H
#define LORAFIT_COMMANDS_H

/* argv[0] is the command name ("inspect"), as main received it shifted by one. */
int cmd_inspect(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_eval(int argc, char **argv);

#endif

/* The volley commands, each a main of its own. */
#ifndef VOLLEY_COMMANDS_H
#define VOLLEY_COMMANDS_H

int volley_probe(int argc, char **argv);
int volley_bench(int argc, char **argv);
int volley_dkim_keygen(int argc, char **argv);
int volley_sink(int argc, char **argv);
int volley_render(int argc, char **argv);
int volley_mx(int argc, char **argv);
int volley_send(int argc, char **argv);

#endif

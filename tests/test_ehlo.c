#include "tests/testutil.h"
int main(void) { return t_done("ehlo placeholder"); }

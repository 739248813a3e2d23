/* A shared library without the external-delegate entry points. */
int not_a_delegate(void) { return 42; }

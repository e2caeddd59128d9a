/* A shared object without loupe_plugin_init: must be refused with the symbol name. */
int some_other_function(void) { return 1; }

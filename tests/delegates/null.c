/*
 * An external delegate that behaves like Mesa's Teflon on a machine without the NPU device:
 * it prints "Couldn't open kernel device" on stderr and returns no delegate.
 */
#include <stddef.h>
#include <stdio.h>

void *tflite_plugin_create_delegate(char **keys, char **values, size_t count,
                                    void (*report_error)(const char *)) {
    (void)keys;
    (void)values;
    (void)count;
    (void)report_error;
    fprintf(stderr, "Couldn't open kernel device\n");
    return NULL;
}

void tflite_plugin_destroy_delegate(void *delegate) { (void)delegate; }

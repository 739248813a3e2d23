/*
 * A minimal TensorFlow Lite external delegate for the tests: it speaks the ABI of
 * tensorflow/lite/delegates/external/external_delegate_interface.h, as Mesa's Teflon does,
 * but claims no nodes, so the interpreter runs the whole model on the CPU.
 *
 * Built by tests/conftest.py with the system `cc`.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

/* Layout of TfLiteDelegate from tensorflow/lite/core/c/common.h. */
typedef struct TfLiteDelegate {
    void *data_;
    TfLiteStatus (*Prepare)(void *context, struct TfLiteDelegate *delegate);
    void *CopyFromBufferHandle;
    void *CopyToBufferHandle;
    void *FreeBufferHandle;
    int64_t flags;
    void *opaque_delegate_builder;
} TfLiteDelegate;

static int prepared = 0;

static TfLiteStatus prepare(void *context, TfLiteDelegate *delegate) {
    (void)context;
    (void)delegate;
    prepared++; /* claim nothing: every node stays with the CPU kernels */
    return kTfLiteOk;
}

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t count,
                                              void (*report_error)(const char *)) {
    (void)keys;
    (void)values;
    (void)count;
    (void)report_error;
    TfLiteDelegate *delegate = calloc(1, sizeof(TfLiteDelegate));
    if (delegate != NULL) delegate->Prepare = prepare;
    return delegate;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate *delegate) { free(delegate); }

/* For the tests: how many times TFLite asked this delegate to prepare a graph. */
int test_delegate_prepare_count(void) { return prepared; }

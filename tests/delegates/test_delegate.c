/*
 * A TFLite external delegate for the tests, speaking the ABI of
 * tensorflow/lite/delegates/external/external_delegate_interface.h as Mesa's Teflon does.
 * Built by tests/conftest.py with the system `cc`, twice:
 * - "passthrough": claims no nodes, so the interpreter runs the whole model on the CPU;
 * - "claiming" (-DCLAIM_BUILTIN=22): every RESHAPE becomes a delegate kernel, which runs the
 *   claimed nodes with TFLite's own kernels (their registration's prepare/invoke). It stands in
 *   for Teflon taking part of a graph, so node accounting and --runtime comparison are exercised
 *   against a real interpreter.
 * - "listed" (-DCLAIM_FROM_ENV): claims the node indices listed in $TEST_DELEGATE_NODES
 *   ("3,4,7"), so TFLite's own partitioner groups any set of nodes, as it does Teflon's.
 * Report variants (tests/test_report.py): -DSKIP_CLAIMED leaves the claimed nodes' outputs
 * unwritten (a delegate computing wrong results), -DABORT_ON_INVOKE aborts like a Mesa assert.
 * With TEFLON_DEBUG=verbose every build prints Teflon's per-node lines (tfl_device.c
 * PrepareDelegate's format), so the report's parser reads the same text it reads on a board.
 * - "failing" (-DCLAIM_BUILTIN=22 -DFAIL_WHEN_ENV_FILE): like "claiming", but invoke fails while
 *   the file named by $BREDOS_TEST_DELEGATE_FAIL exists: a delegate that breaks during serving.
 * Fault variants, for the child-process probe and the runtime fallback (each with CLAIM_BUILTIN
 * where the fault is in the claimed kernel):
 * - FAULT_SEGV_ON_CREATE: a real segmentation fault in tflite_plugin_create_delegate;
 * - FAULT_ABORT_ON_PREPARE / FAULT_ABORT_ON_INVOKE: a failed assert() (SIGABRT) when the kernel
 *   prepares (compiles) or runs, as Mesa asserts on graphs it cannot handle;
 * - FAULT_FAIL_INVOKE_AFTER=N: the kernel runs N times, then returns kTfLiteError;
 * - FAULT_HANG_ON_INVOKE: the kernel never returns (a hung device).
 *
 * Only the long-stable prefixes of TFLite's C structs are declared (tensorflow/lite/core/c/
 * common.h): TfLiteContext up to ReplaceNodeSubsetsWithDelegateKernels, TfLiteRegistration up to
 * builtin_code, TfLiteDelegateParams. The registration passed by value is padded with zeros so
 * that fields added by newer TFLite versions read as "unset".
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef CLAIM_BUILTIN
#define CLAIM_BUILTIN (-1) /* no builtin has this code: claim nothing */
#endif

typedef enum { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;

typedef struct { int size; int data[]; } TfLiteIntArray;
typedef struct TfLiteNode TfLiteNode;
struct TfLiteContext;
struct TfLiteDelegate;

typedef struct TfLiteRegistration {
    void *(*init)(struct TfLiteContext *, const char *, size_t);
    void (*free)(struct TfLiteContext *, void *);
    TfLiteStatus (*prepare)(struct TfLiteContext *, TfLiteNode *);
    TfLiteStatus (*invoke)(struct TfLiteContext *, TfLiteNode *);
    const char *(*profiling_string)(const struct TfLiteContext *, const TfLiteNode *);
    int32_t builtin_code;
    const char *custom_name;
    int version;
    void *padding[32]; /* fields of newer TFLite versions: zero */
} TfLiteRegistration;

typedef struct TfLiteContext {
    size_t tensors_size;
    TfLiteStatus (*GetExecutionPlan)(struct TfLiteContext *, TfLiteIntArray **);
    void *tensors;
    void *impl_;
    void *ResizeTensor;
    void *ReportError;
    void *AddTensors;
    TfLiteStatus (*GetNodeAndRegistration)(struct TfLiteContext *, int, TfLiteNode **,
                                           TfLiteRegistration **);
    TfLiteStatus (*ReplaceNodeSubsetsWithDelegateKernels)(struct TfLiteContext *,
                                                          TfLiteRegistration,
                                                          const TfLiteIntArray *,
                                                          struct TfLiteDelegate *);
} TfLiteContext;

typedef struct TfLiteDelegate {
    void *data_;
    TfLiteStatus (*Prepare)(TfLiteContext *, struct TfLiteDelegate *);
    void *CopyFromBufferHandle;
    void *CopyToBufferHandle;
    void *FreeBufferHandle;
    int64_t flags;
    void *opaque_delegate_builder;
} TfLiteDelegate;

typedef struct {
    struct TfLiteDelegate *delegate;
    TfLiteIntArray *nodes_to_replace;
    TfLiteIntArray *input_tensors;
    TfLiteIntArray *output_tensors;
} TfLiteDelegateParams;

/* Copies of the claimed nodes: the interpreter's node array may move as kernels are added, and
 * GetNodeAndRegistration may only be called while the delegate prepares. 128 bytes covers
 * TfLiteNode (about 80 bytes today) and stays inside the interpreter's node/registration pair. */
enum { NODE_BYTES = 128 };

typedef struct {
    unsigned char node[NODE_BYTES];
    TfLiteStatus (*prepare)(TfLiteContext *, TfLiteNode *);
    TfLiteStatus (*invoke)(TfLiteContext *, TfLiteNode *);
} Claimed;

typedef struct {
    int count;
    Claimed nodes[];
} Kernel;

/* TfLiteNode starts with five pointers: inputs, outputs, intermediates, temporaries, user_data. */
static TfLiteIntArray **temporaries(void *node) { return (TfLiteIntArray **)((char *)node + 3 * sizeof(void *)); }

static void *kernel_init(TfLiteContext *context, const char *buffer, size_t length) {
    (void)length;
    const TfLiteDelegateParams *params = (const TfLiteDelegateParams *)buffer;
    int count = params->nodes_to_replace->size;
    Kernel *kernel = calloc(1, sizeof(Kernel) + sizeof(Claimed) * (size_t)count);
    kernel->count = count;
    for (int i = 0; i < count; i++) {
        TfLiteNode *node;
        TfLiteRegistration *registration;
        if (context->GetNodeAndRegistration(context, params->nodes_to_replace->data[i], &node,
                                            &registration) != kTfLiteOk) {
            free(kernel);
            return NULL;
        }
        memcpy(kernel->nodes[i].node, node, NODE_BYTES);
        /* Kernels such as CONV_2D replace node->temporaries in prepare: the copy gets its own
         * (freed with the kernel), or the original's array would be freed twice. */
        *temporaries(kernel->nodes[i].node) = NULL;
        kernel->nodes[i].prepare = registration->prepare;
        kernel->nodes[i].invoke = registration->invoke;
    }
    return kernel;
}

static void kernel_free(TfLiteContext *context, void *buffer) {
    (void)context;
    Kernel *kernel = buffer;
    if (kernel == NULL) return;
    for (int i = 0; i < kernel->count; i++) free(*temporaries(kernel->nodes[i].node));
    free(kernel);
}

/* Run one hook of every claimed node with its own (CPU) kernel. */
static TfLiteStatus run_claimed(TfLiteContext *context, TfLiteNode *node, int invoke) {
    Kernel *kernel = *(Kernel **)((char *)node + 4 * sizeof(void *)); /* node->user_data */
    if (kernel == NULL) return kTfLiteError;
    for (int i = 0; i < kernel->count; i++) {
        Claimed *claimed = &kernel->nodes[i];
        TfLiteStatus (*hook)(TfLiteContext *, TfLiteNode *) = invoke ? claimed->invoke : claimed->prepare;
        if (hook != NULL && hook(context, (TfLiteNode *)claimed->node) != kTfLiteOk) return kTfLiteError;
    }
    return kTfLiteOk;
}

static TfLiteStatus kernel_prepare(TfLiteContext *context, TfLiteNode *node) {
#ifdef FAULT_ABORT_ON_PREPARE
    assert(!"the test delegate cannot compile this graph");
#endif
    return run_claimed(context, node, 0);
}

#ifdef FAIL_WHEN_ENV_FILE
#include <unistd.h>
static int asked_to_fail(void) {
    const char *path = getenv("BREDOS_TEST_DELEGATE_FAIL");
    return path != NULL && access(path, F_OK) == 0;
}
#else
static int asked_to_fail(void) { return 0; }
#endif

static int invoked = 0;

static TfLiteStatus kernel_invoke(TfLiteContext *context, TfLiteNode *node) {
    invoked++;
    if (asked_to_fail()) return kTfLiteError;
#ifdef ABORT_ON_INVOKE
    abort();
#endif
#ifdef FAULT_ABORT_ON_INVOKE
    assert(!"the test delegate cannot run this graph");
#endif
#ifdef FAULT_HANG_ON_INVOKE
    for (;;) pause();
#endif
#ifdef FAULT_FAIL_INVOKE_AFTER
    if (invoked > FAULT_FAIL_INVOKE_AFTER) return kTfLiteError;
#endif
#ifdef SKIP_CLAIMED
    (void)context;
    (void)node;
    return kTfLiteOk;
#else
    return run_claimed(context, node, 1);
#endif
}

static int verbose(void) {
    const char *flags = getenv("TEFLON_DEBUG");
    return flags != NULL && strstr(flags, "verbose") != NULL;
}

static const char *op_name(int32_t builtin_code) {
    switch (builtin_code) {
    case 0: return "ADD";
    case 1: return "AVGPOOL";
    case 3: return "CONV";
    case 4: return "DWCONV";
    case 22: return "RESHAPE";
    case 25: return "SOFTMAX";
    default: return "unknown";
    }
}

static int prepared = 0;

#ifdef CLAIM_FROM_ENV
/* Whether node `index` is in the comma-separated list $TEST_DELEGATE_NODES. */
static int listed(int index) {
    const char *list = getenv("TEST_DELEGATE_NODES");
    char *end;
    while (list != NULL && *list != '\0') {
        long value = strtol(list, &end, 10);
        if (end == list) return 0;
        if (value == index) return 1;
        list = *end == ',' ? end + 1 : end;
    }
    return 0;
}
#define CLAIMS(index, registration) listed(index)
#else
#define CLAIMS(index, registration) ((registration)->builtin_code == CLAIM_BUILTIN)
#endif

static TfLiteStatus prepare(TfLiteContext *context, TfLiteDelegate *delegate) {
    prepared++;
    TfLiteIntArray *plan;
    if (context->GetExecutionPlan(context, &plan)) return kTfLiteError;
    TfLiteIntArray *claimed = malloc(sizeof(int) * (size_t)(plan->size + 1));
    claimed->size = 0;
    for (int i = 0; i < plan->size; i++) {
        TfLiteNode *node;
        TfLiteRegistration *registration;
        if (context->GetNodeAndRegistration(context, plan->data[i], &node, &registration)) {
            free(claimed);
            return kTfLiteError;
        }
        int supported = CLAIMS(plan->data[i], registration);
        if (verbose())
            fprintf(stderr, "%3d %-15s v%-2d %-11s in: out:\n", plan->data[i],
                    op_name(registration->builtin_code), registration->version,
                    supported ? "supported" : "unsupported");
        if (supported)
            claimed->data[claimed->size++] = plan->data[i];
    }
    TfLiteRegistration kernel;
    memset(&kernel, 0, sizeof(kernel));
    kernel.init = kernel_init;
    kernel.free = kernel_free;
    kernel.prepare = kernel_prepare;
    kernel.invoke = kernel_invoke;
    kernel.custom_name = "BredosTestClaimingDelegate";
    kernel.version = 1;
    TfLiteStatus status = claimed->size
        ? context->ReplaceNodeSubsetsWithDelegateKernels(context, kernel, claimed, delegate)
        : kTfLiteOk;
    free(claimed);
    return status;
}

TfLiteDelegate *tflite_plugin_create_delegate(char **keys, char **values, size_t count,
                                              void (*report_error)(const char *)) {
    (void)keys;
    (void)values;
    (void)count;
    (void)report_error;
#ifdef FAULT_SEGV_ON_CREATE
    volatile int *volatile nowhere = NULL;
    *nowhere = 1;
#endif
    TfLiteDelegate *delegate = calloc(1, sizeof(TfLiteDelegate));
    if (delegate != NULL) delegate->Prepare = prepare;
    return delegate;
}

void tflite_plugin_destroy_delegate(TfLiteDelegate *delegate) { free(delegate); }

/* For the tests: how many times TFLite asked this delegate to prepare a graph. */
int test_delegate_prepare_count(void) { return prepared; }

/* For the tests: how many times the claimed kernels ran, and starting that count again. */
int test_delegate_invoke_count(void) { return invoked; }
void test_delegate_reset_invoke_count(void) { invoked = 0; }

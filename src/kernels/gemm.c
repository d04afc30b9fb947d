/* gemm.c - the one place that talks to CBLAS. */
#include "config.h"
#include "mpicnn/kernels.h"

#include <cblas.h>
#include <stdio.h>
#include <string.h>

/* op(A) is (M,K), op(B) is (K,N), C is (M,N); row-major. */
void cnn_sgemm(int ta, int tb, int M, int N, int K, float alpha,
               const float *A, int lda, const float *B, int ldb, float beta,
               float *C, int ldc)
{
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans,
                tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb,
                beta, C, ldc);
}

void cnn_blas_single_thread(void)
{
#ifdef HAVE_OPENBLAS_SET_NUM_THREADS
    /* Threads come from OpenMP over images; a threaded BLAS inside each
     * would oversubscribe the cores. */
    openblas_set_num_threads(1);
#endif
}

/* OpenBLAS's configuration string ends with the name of the kernels it
 * runs and then its thread count: "OpenBLAS 0.3.21 NO_LAPACKE
 * DYNAMIC_ARCH NO_AFFINITY Cooperlake MAX_THREADS=64", or "...
 * SINGLE_THREADED" for a single-threaded build. */
const char *cnn_blas_kernels(void)
{
#ifdef HAVE_OPENBLAS_GET_CONFIG
    static char name[64];
    const char *cfg = openblas_get_config();
    const char *end = cfg ? strstr(cfg, " MAX_THREADS=") : NULL;
    if (cfg && !end) end = strstr(cfg, " SINGLE_THREADED");
    const char *start = end;
    while (start && start > cfg && start[-1] != ' ') start--;
    if (start && start < end) {
        snprintf(name, sizeof name, "%.*s", (int)(end - start), start);
        return name;
    }
#endif
    return "unknown";
}

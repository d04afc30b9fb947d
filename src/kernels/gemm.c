/* gemm.c - the one place that talks to CBLAS. */
#include "config.h"
#include "mpicnn/kernels.h"

#include <cblas.h>

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

const char *cnn_blas_kernels(void)
{
#ifdef HAVE_OPENBLAS_GET_CORENAME
    return openblas_get_corename();
#else
    return "unknown";
#endif
}

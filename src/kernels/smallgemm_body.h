/* smallgemm_body.h - the kernels of smallgemm.c for one vector width,
 * included once per width. The includer defines
 *   VN     lanes per vector          VF     the vector type of VN floats
 *   SG(f)  f's name for this width   KATTR  the kernels' target attribute
 * and KB, JB (the block shape: KB rows of W or dy, dW blocks of up to JB
 * columns). Everything here is static. */

/* y rows 0..nr-1 (nr <= KB), columns 0..nv*VN-1 (nv <= 3), of a block,
 * from b (or 0), or from y itself with acc. Inlined into each clone, so
 * that it is compiled for the clone's instruction set, and with nr and nv
 * constant. */
INLINE void SG(fwd_block)(const float *w, const float *b, int D, const float *col,
                          size_t ldcol, int nr, int nv, int acc, float *y, size_t ldy)
{
    VF a[KB][3];
    for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++)
            a[r][v] = acc ? *(const VF *)(y + (size_t)r * ldy + v * VN)
                          : (VF){0} + (b ? b[r] : 0.0f);
    const float *c = col;
    for (int j = 0; j < D; j++, c += ldcol) {
        VF cv[3];
        for (int v = 0; v < nv; v++) cv[v] = *(const VF *)(c + v * VN);
        for (int r = 0; r < nr; r++) {
            const float wv = w[(size_t)r * D + j];
            for (int v = 0; v < nv; v++) a[r][v] += wv * cv[v];
        }
    }
    for (int r = 0; r < nr; r++)
        for (int v = 0; v < nv; v++) *(VF *)(y + (size_t)r * ldy + v * VN) = a[r][v];
}

/* The columns [p0, p0 + nv*VN) of every row: blocks of KB rows, then the
 * last rows in blocks of 2 and 1 */
INLINE void SG(fwd_panel)(const float *w, const float *b, int K, int D, const float *col,
                          size_t ldcol, size_t p0, int nv, int acc, float *y, size_t ldy)
{
    int k0 = 0;
    for (; k0 + KB <= K; k0 += KB)
        SG(fwd_block)(w + (size_t)k0 * D, b ? b + k0 : NULL, D, col + p0, ldcol, KB, nv, acc,
                      y + (size_t)k0 * ldy + p0, ldy);
    for (; k0 + 2 <= K; k0 += 2)
        SG(fwd_block)(w + (size_t)k0 * D, b ? b + k0 : NULL, D, col + p0, ldcol, 2, nv, acc,
                      y + (size_t)k0 * ldy + p0, ldy);
    if (k0 < K)
        SG(fwd_block)(w + (size_t)k0 * D, b ? b + k0 : NULL, D, col + p0, ldcol, 1, nv, acc,
                      y + (size_t)k0 * ldy + p0, ldy);
}

/* The last n < VN columns of every row, in vectors whose lanes past n
 * are 0: the arithmetic of fwd_block, lane for lane, so that an element
 * gets the same bits whether it falls in the tail or in a panel (and so
 * whatever P the caller cuts the columns into). Scalar code did not: GCC
 * vectorized its sum over j into products and separate adds, two
 * roundings where the panels' fused multiply-adds round once. col's
 * columns are copied into a padded panel TAIL_J rows at a time; between
 * pieces each row's sums wait in y (exactly: a float stored and loaded). */
#ifndef TAIL_J
#define TAIL_J 64
#endif
/* Rows k..k+nr-1 of fwd_tail's piece j0 (nj rows of the panel pan): nr
 * sums side by side (nr constant where it is inlined), so that the
 * multiply-adds of one row do not each wait for the one before. */
INLINE void SG(tail_rows)(const float *w, const float *b, int D, const VF *pan, int j0, int nj,
                          int n, int acc, float *y, size_t ldy, int k, int nr)
{
    VF a[KB];
    for (int r = 0; r < nr; r++) {
        const float *yk = y + (size_t)(k + r) * ldy;
        a[r] = (VF){0};
        if (acc || j0 > 0)
            for (int l = 0; l < n; l++) a[r][l] = yk[l];
        else
            a[r] += b ? b[k + r] : 0.0f;
    }
    const float *wk = w + (size_t)k * D + j0;
    for (int j = 0; j < nj; j++)
        for (int r = 0; r < nr; r++) a[r] += wk[(size_t)r * D + j] * pan[j];
    for (int r = 0; r < nr; r++)
        for (int l = 0; l < n; l++) y[(size_t)(k + r) * ldy + l] = a[r][l];
}

INLINE void SG(fwd_tail)(const float *w, const float *b, int K, int D, const float *col,
                         size_t ldcol, int n, int acc, float *y, size_t ldy)
{
    VF pan[TAIL_J];
    for (int j0 = 0; j0 < D || j0 == 0; j0 += TAIL_J) {
        const int nj = D - j0 < TAIL_J ? D - j0 : TAIL_J;
        for (int j = 0; j < nj; j++) {
            pan[j] = (VF){0};
            for (int l = 0; l < n; l++) pan[j][l] = col[(size_t)(j0 + j) * ldcol + l];
        }
        int k = 0;
        for (; k + KB <= K; k += KB) SG(tail_rows)(w, b, D, pan, j0, nj, n, acc, y, ldy, k, KB);
        for (; k < K; k++) SG(tail_rows)(w, b, D, pan, j0, nj, n, acc, y, ldy, k, 1);
    }
}

KATTR static void SG(inner)(const float *w, const float *b, int K, int D, const float *col,
                            size_t ldcol, size_t P, int acc, float *y, size_t ldy)
{
    /* column panels outside, row blocks inside: a panel of col (D x 3
     * vectors) stays in L1 while every row block of W passes over it */
    size_t p0 = 0;
    for (; p0 + 3 * VN <= P; p0 += 3 * VN)
        SG(fwd_panel)(w, b, K, D, col, ldcol, p0, 3, acc, y, ldy);
    for (; p0 + VN <= P; p0 += VN) SG(fwd_panel)(w, b, K, D, col, ldcol, p0, 1, acc, y, ldy);
    if (p0 < P) SG(fwd_tail)(w, b, K, D, col + p0, ldcol, (int)(P - p0), acc, y + p0, ldy);
}

/* dW[k][j] for one element, in the blocks' order: VN interleaved lanes
 * over p, the tail in lanes 0, 1, ..., then the lanes in order */
INLINE float SG(dw_one)(const float *g, const float *c, size_t P)
{
    float lane[VN] = {0};
    size_t p = 0;
    for (; p + VN <= P; p += VN)
        for (int l = 0; l < VN; l++) lane[l] += g[p + l] * c[p + l];
    for (int l = 0; p < P; p++, l++) lane[l] += g[p] * c[p];
    float sum = 0.0f;
    for (int l = 0; l < VN; l++) sum += lane[l];
    return sum;
}

/* sum of g[0..P), in the same lanes as dw_one */
INLINE float SG(row_sum)(const float *g, size_t P)
{
    float lane[VN] = {0};
    size_t p = 0;
    for (; p + VN <= P; p += VN)
        for (int l = 0; l < VN; l++) lane[l] += g[p + l];
    for (int l = 0; p < P; p++, l++) lane[l] += g[p];
    float sum = 0.0f;
    for (int l = 0; l < VN; l++) sum += lane[l];
    return sum;
}

/* dW rows k..k+KB-1, columns j..j+nj-1 (nj <= JB; constant where it is
 * inlined): KB rows of dy x nj rows of col, the accumulators in
 * registers */
INLINE void SG(dw_block)(const float *dy, size_t ldy, int k, size_t P, const float *col,
                         size_t ldcol, int D, int j, int nj, float *dw)
{
    VF a[KB][JB];
    for (int r = 0; r < KB; r++)
        for (int s = 0; s < nj; s++) a[r][s] = (VF){0};
    const float *g = dy + (size_t)k * ldy, *c = col + (size_t)j * ldcol;
    size_t p = 0;
    for (; p + VN <= P; p += VN) {
        VF cv[JB];
        for (int s = 0; s < nj; s++) cv[s] = *(const VF *)(c + (size_t)s * ldcol + p);
        for (int r = 0; r < KB; r++) {
            const VF gv = *(const VF *)(g + (size_t)r * ldy + p);
            for (int s = 0; s < nj; s++) a[r][s] += gv * cv[s];
        }
    }
    for (int l = 0; p < P; p++, l++)
        for (int r = 0; r < KB; r++)
            for (int s = 0; s < nj; s++)
                a[r][s][l] += g[(size_t)r * ldy + p] * c[(size_t)s * ldcol + p];
#ifdef LANE_SUMS
    for (int e0 = 0; e0 < KB * nj; e0 += VN) { /* VN accumulators at a time */
        VF t[VN];
        for (int e = 0; e < VN; e++)
            t[e] = e0 + e < KB * nj ? a[(e0 + e) / nj][(e0 + e) % nj] : (VF){0};
        const VF sum = LANE_SUMS(t);
        for (int e = 0; e0 + e < KB * nj && e < VN; e++)
            dw[(size_t)(k + (e0 + e) / nj) * D + j + (e0 + e) % nj] += sum[e];
    }
#else
    for (int r = 0; r < KB; r++)
        for (int s = 0; s < nj; s++) {
            float sum = 0.0f;
            for (int l = 0; l < VN; l++) sum += a[r][s][l];
            dw[(size_t)(k + r) * D + j + s] += sum;
        }
#endif
}

KATTR static void SG(dw)(const float *dy, size_t ldy, int k0, int k1, size_t P,
                         const float *col, size_t ldcol, int D, float *dw, float *db)
{
    int k = k0;
    for (; k + KB <= k1; k += KB) {
        int j = 0;
#ifdef LANE_SUMS
        /* 4 x 4 accumulators: the VN sums of one LANE_SUMS */
        if (KB * 4 == VN && D % 4 == 0)
            for (; j < D; j += 4) SG(dw_block)(dy, ldy, k, P, col, ldcol, D, j, 4, dw);
#endif
        for (; j + JB <= D; j += JB) SG(dw_block)(dy, ldy, k, P, col, ldcol, D, j, JB, dw);
        for (; j + 3 <= D; j += 3) SG(dw_block)(dy, ldy, k, P, col, ldcol, D, j, 3, dw);
        if (D - j == 2) SG(dw_block)(dy, ldy, k, P, col, ldcol, D, j, 2, dw);
        if (D - j == 1) SG(dw_block)(dy, ldy, k, P, col, ldcol, D, j, 1, dw);
        if (db) /* the block's rows of dy are still in the cache */
            for (int r = 0; r < KB; r++) db[k + r] += SG(row_sum)(dy + (size_t)(k + r) * ldy, P);
    }
    for (; k < k1; k++) {
        for (int j = 0; j < D; j++)
            dw[(size_t)k * D + j] += SG(dw_one)(dy + (size_t)k * ldy, col + (size_t)j * ldcol, P);
        if (db) db[k] += SG(row_sum)(dy + (size_t)k * ldy, P);
    }
}

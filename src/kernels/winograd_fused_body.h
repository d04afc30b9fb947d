/* winograd_fused_body.h - winograd_fused.c's kernel for one vector
 * width, included once per width. The includer defines
 *   VN     lanes per vector        VF, VI  the float and int32 vectors
 *   FN(f)  f's name for this width INTERLEAVE_LO/HI(a, b): lanes
 *          a0 b0 a1 b1 ... of the low and high halves
 * Every lane's arithmetic is the same at either width. */

INLINE void FN(fused_f25)(int C, const float *vb, const float *uk, float b, VF row[2][2])
{
    VF o00 = {0}, o01 = {0}, o10 = {0}, o11 = {0};
#pragma GCC unroll 6
    for (int q = 0; q < 6; q++) {
        VF t0 = {0}, t1 = {0}; /* column q of A^T M: rows (1 1 1 1 1 0), (0 1 -1 2 -2 1) */
#pragma GCC unroll 6
        for (int r = 0; r < 6; r++) {
            const int xi = 6 * r + q;
            VF m = uk[xi * C] * *(const VF *)(vb + (size_t)xi * C * VN);
#pragma GCC unroll 4
            for (int c = 1; c < C; c++)
                m += uk[xi * C + c] * *(const VF *)(vb + (size_t)(xi * C + c) * VN);
            if (r < 5) t0 += m;
            if (r == 1 || r == 5) t1 += m;
            if (r == 2) t1 -= m;
            if (r == 3) t1 += m + m;
            if (r == 4) t1 -= m + m;
        }
        /* (A^T M) A: column q's share of the two output columns */
        if (q < 5) {
            o00 += t0;
            o10 += t1;
        }
        if (q == 1 || q == 5) {
            o01 += t0;
            o11 += t1;
        }
        if (q == 2) {
            o01 -= t0;
            o11 -= t1;
        }
        if (q == 3) {
            o01 += t0 + t0;
            o11 += t1 + t1;
        }
        if (q == 4) {
            o01 -= t0 + t0;
            o11 -= t1 + t1;
        }
    }
    o00 += b;
    o01 += b;
    o10 += b;
    o11 += b;
    row[0][0] = INTERLEAVE_LO(o00, o01);
    row[0][1] = INTERLEAVE_HI(o00, o01);
    row[1][0] = INTERLEAVE_LO(o10, o11);
    row[1][1] = INTERLEAVE_HI(o10, o11);
}

INLINE void FN(fused_tiles)(int C, const float *V, size_t xs, const float *UK, int K, int OH,
                            int OW, int th, int tw, const float *bias, float *y, int relu,
                            float *vb)
{
    const size_t tpi = (size_t)th * tw, ohw = (size_t)OH * OW;
    for (int ti = 0; ti < th; ti++)
        for (int tj0 = 0; tj0 < tw; tj0 += VN) {
            const float *vt = V + (size_t)ti * tw + tj0;
            for (int xi = 0; xi < 36; xi++)
                for (int c = 0; c < C; c++)
                    *(VF *)(vb + (size_t)(xi * C + c) * VN) = *(const VF *)(vt + xi * xs + c * tpi);
            const int rows = OH - 2 * ti < 2 ? OH - 2 * ti : 2;
            const int cols = OW - 2 * tj0 < 2 * VN ? OW - 2 * tj0 : 2 * VN;
            for (int k = 0; k < K; k++) {
                VF row[2][2];
                FN(fused_f25)(C, vb, UK + (size_t)k * 36 * C, bias[k], row);
                float *yk = y + (size_t)k * ohw + (size_t)(2 * ti) * OW + 2 * tj0;
                for (int a = 0; a < rows; a++)
                    for (int h = 0; h < 2; h++) {
                        VF o = row[a][h];
                        if (relu) o = (VF)((VI)o & (o > 0.0f)); /* relu8's */
                        const int n = cols - h * VN; /* lanes inside the row */
                        float *p = yk + (size_t)a * OW + h * VN;
                        if (n >= VN)
                            *(VF *)p = o;
                        else
                            for (int l = 0; l < VN; l++) /* store8's */
                                if (l < n) p[l] = o[l];
                    }
            }
        }
}


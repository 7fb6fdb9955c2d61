/* tests/test_tensor_ref.c — see test_tensor_ref.h. */
#include "tests/test_tensor_ref.h"

#include <check.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

void ref_attention_f64(const double *q, const double *k, const double *v, const int32_t *seg, int B,
                       int T, int NH, int NKV, int D, double *out) {
    double *sc = malloc((size_t)T * sizeof *sc);
    ck_assert(sc != NULL);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int kh = h / (NH / NKV);
            for (int t = 0; t < T; t++) {
                double mx = -1e300, sum = 0.0;
                for (int s = 0; s <= t; s++) {
                    bool ok = !seg || seg[b * T + s] == seg[b * T + t];
                    double d = 0.0;
                    for (int i = 0; i < D; i++)
                        d +=
                            q[((b * T + t) * NH + h) * D + i] * k[((b * T + s) * NKV + kh) * D + i];
                    sc[s] = ok ? d / sqrt((double)D) : -INFINITY;
                    if (sc[s] > mx) mx = sc[s];
                }
                for (int s = 0; s <= t; s++) sum += (sc[s] = exp(sc[s] - mx));
                for (int i = 0; i < D; i++) {
                    double acc = 0.0;
                    for (int s = 0; s <= t; s++)
                        acc += sc[s] / sum * v[((b * T + s) * NKV + kh) * D + i];
                    out[((b * T + t) * NH + h) * D + i] = acc;
                }
            }
        }
    free(sc);
}

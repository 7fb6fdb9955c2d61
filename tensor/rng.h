/* tensor/rng.h — the project's seeded pseudo-random generator (part of tensor/'s API).
 *
 * xoshiro256** 1.0 (Blackman & Vigna, https://prng.di.unimi.it/), seeded through
 * splitmix64. Small, fast, and its whole state is four words, so checkpoints can save and
 * restore it exactly. Never rand(): results must not depend on the C library. */
#ifndef LORAFIT_RNG_H
#define LORAFIT_RNG_H

#include <stdint.h>

typedef struct Rng {
    uint64_t s[4];
} Rng;

/* splitmix64 step: also a good 64-bit mixing hash of *state. */
uint64_t rng_splitmix64(uint64_t *state);
/* Seeds from (seed, stream): distinct streams give independent sequences. */
void rng_seed(Rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_next(Rng *r);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t rng_below(Rng *r, uint64_t n);
/* Uniform double in [0, 1) with 53 random bits. */
double rng_uniform(Rng *r);

#endif

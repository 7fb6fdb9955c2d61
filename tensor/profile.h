/* tensor/profile.h — the op-class timers of tensor_profile_begin(); private to tensor/.
 *
 *   Tensor *op_swiglu(Graph *g, ...) { PROFILE_OP(TENSOR_OP_SWIGLU); ... }
 * counts the rest of the enclosing block (to any return) as SwiGLU time; a scope inside it
 * (a product) takes its own time out. Costs one branch when profiling is off. */
#ifndef LORAFIT_PROFILE_H
#define LORAFIT_PROFILE_H

#include "tensor/tensor.h"

typedef struct {
    bool active;
    TensorOpClass outer; /* the class to go back to */
} ProfileScope;

ProfileScope profile_enter(TensorOpClass c);
void profile_leave(ProfileScope *s);
/* The class counting now (graph_record keeps it for the entry's backward). */
TensorOpClass profile_current(void);

#define PROFILE_OP(cls)                                                                            \
    __attribute__((cleanup(profile_leave), unused)) ProfileScope profile_scope_ = profile_enter(cls)

/* Around one matrix product (m, n, k): start is the time it began (0 when profiling is off);
 * done counts it for the op class around it. */
double profile_product_start(void);
void profile_product_done(double start, int m, int n, int k);

#endif

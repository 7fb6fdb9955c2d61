/* tests/test_fixture_util.h — a model against a make_fixture.py fixture of the float64 PyTorch
 * reference (tests/data/train/X, tests/data/gguf_base/ref/X, ../shared/fixtures/X), as
 * test_model.c, test_train.c and test_gguf_base_ref.c check it. */
#ifndef LORAFIT_TEST_FIXTURE_UTIL_H
#define LORAFIT_TEST_FIXTURE_UTIL_H

/* Batch 0 on model_dir (a directory or a .gguf file) with the fixture's initial adapter: the
 * logits (1e-3), the loss (within loss_tol relative), the gradient norm and every LoRA
 * gradient (1e-4 relative). */
void fx_check_step(const char *model_dir, const char *fx, double loss_tol);
/* `lorafit train` in f32 with the fixture's hyperparameters (its fixture.json): every step's
 * loss and the first gradient norm within 1e-4 relative, the adapter after the last step
 * within 2e-3. */
void fx_check_train(const char *fixture_rel, const char *model_rel);

#endif

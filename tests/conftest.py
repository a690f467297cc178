"""Test-wide settings.

* Strict JAX numerics: implicit rank promotion (e.g. adding a (B,) vector to a
  (B, D) batch, which broadcasts along the wrong axis) raises instead of silently
  broadcasting; every per-example scalar must be reshaped explicitly
  (`scorejax.sde.batch_broadcast`).
* A persistent XLA compilation cache shared by the pytest workers (and the CLI
  subprocesses the tests start): configs whose smoke-size networks are identical
  (e.g. the deep and plain variants, VP and its deep twin) compile once, and a rerun
  of the suite loads its programs instead of compiling them again. Every compilation
  is kept (minimum compile time 0 s): the many small programs of the maths tests
  (and of op-by-op dispatch) add up to about a third of the fast tier's time.
"""

import os
import tempfile

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), f"scorejax-test-xla-cache-{os.getuid()}"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_NUMPY_RANK_PROMOTION", "raise")

import scorejax  # noqa: E402,F401  (its XLA:CPU defaults, before any backend starts)


# Tests whose checks are also made, more cheaply, by a fast test of the same module and
# mode: the full suite runs them, the fast tier (`-m "not slow"`, <= 3 min on 2 cores)
# does not. Listed here by node id so that the budget is set in one place.
SLOW_IN_FULL_SUITE_ONLY = {
    "test_compilation.py::test_each_jitted_function_of_a_run_compiles_once",
    "test_evaluation.py::test_eval_resumes_at_the_first_missing_round",
    "test_likelihood.py::test_hutchinson_is_unbiased[vp-32d-hutchinson_gaussian]",
    "test_likelihood.py::test_jit_and_vmap_over_keys",
    "test_likelihood.py::test_bits_per_dim_offset_matches_scaling",
    "test_likelihood.py::test_exact_score_matches_closed_form[ve-2d]",
    "test_likelihood.py::test_exact_score_matches_closed_form[cosine-2d]",
    "test_likelihood.py::test_exact_score_matches_closed_form[subvp-2d]",
    "test_likelihood.py::test_every_time_variable_matches_closed_form[ve-angle]",
    "test_likelihood.py::test_failed_solve_gives_nan",
    "test_faults_inputs.py::test_non_finite_example_leaves_the_rest_of_its_batch_intact[inf]",
    "test_faults_cli.py::test_eval_batch_size_not_divisible_by_the_devices_fails_up_front",
    "test_sampling.py::test_ode_time_variables_solve_the_same_ode[ve]",
    "test_sampling.py::test_samplers_jit_and_vmap_over_keys",
    "test_sampling.py::test_ode_nfe_counts_every_score_evaluation[heun]",
    "test_controllable.py::test_encode_decode_round_trip_and_latents_follow_the_prior[vp]",
    "test_ncsnv2.py::test_larger_ncsnv2_shapes[ncsnv2_256-256]",
    "test_few_step.py::test_convergence_order[vp-log_snr-dpm_solver++_3m]",
    "test_main.py::test_config_trains_two_steps[toy_2d]",
    "test_likelihood.py::test_exact_score_matches_closed_form[vp-32d]",
    "test_faults_training.py::test_steps_per_dispatch_change_nothing_but_the_dispatches",
    "test_precision.py::test_bfloat16_network_computes_its_body_in_bfloat16[vp_cifar10]",
    "test_precision.py::test_bfloat16_network_computes_its_body_in_bfloat16[ddpm_cifar10]",
}


def pytest_collection_modifyitems(config, items):
  import pytest
  for item in items:
    if item.nodeid.split("/")[-1] in SLOW_IN_FULL_SUITE_ONLY:
      item.add_marker(pytest.mark.slow)
  _skip_digits_demos(items)


# Digits demonstrations that train or sample for 5-20 minutes each on 2 cores beyond the
# shared quick-start run, and whose numbers are recorded in the docs (docs/inverse.md,
# docs/training.md, docs/controllable.md): run on request (SCOREJAX_RUN_DIGITS_DEMOS=1), which keeps the full
# suite within CI's time.
DIGITS_DEMOS = {
    "test_inverse.py::test_digits_solvers_beat_the_classical_reconstruction[radon]",
    "test_inverse.py::test_digits_solvers_beat_the_classical_reconstruction[fourier]",
    "test_likelihood_training.py::test_likelihood_training_lowers_the_digits_bits_per_dim",
    "test_digits_guidance.py::test_classifier_guidance_gives_the_requested_digits",
    "test_digits_guidance.py::test_classifier_free_guidance_gives_the_requested_digits",
    "test_digits_guidance.py::test_inpainting_lower_halves_keeps_the_digit",
    "test_examples.py::test_noise_scale_ablation_reproduces_both_techniques",
}


def _skip_digits_demos(items):
  import pytest
  if os.environ.get("SCOREJAX_RUN_DIGITS_DEMOS"):
    return
  skip = pytest.mark.skip(reason="digits demonstration: set SCOREJAX_RUN_DIGITS_DEMOS=1")
  for item in items:
    if item.nodeid.split("/")[-1] in DIGITS_DEMOS:
      item.add_marker(skip)

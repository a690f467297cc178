"""scorejax.xla_cpu_defaults: the XLA:CPU option `import scorejax` sets, and that a
user's own setting of it wins."""

import os

from scorejax import xla_cpu_defaults


def test_adds_the_flag_to_an_empty_or_unrelated_environment():
  env = {}
  assert xla_cpu_defaults.apply(env) == "--xla_cpu_experimental_ynn_fusion_type="
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  assert xla_cpu_defaults.apply(env) == ("--xla_force_host_platform_device_count=2 "
                                         "--xla_cpu_experimental_ynn_fusion_type=")
  assert xla_cpu_defaults.apply(env) == env["XLA_FLAGS"]  # idempotent: added once


def test_a_flag_the_user_set_is_left_alone():
  env = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=dot"}
  assert xla_cpu_defaults.apply(env) == "--xla_cpu_experimental_ynn_fusion_type=dot"


def test_importing_scorejax_set_it_in_this_process():
  import scorejax  # noqa: F401
  assert "--xla_cpu_experimental_ynn_fusion_type" in os.environ.get("XLA_FLAGS", "")

"""Optimizer, EMA, train step, data-parallel equivalence and checkpoints (no datasets)."""

import errno
import logging
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from scorejax.training import checkpoint, optim
from scorejax.training.state import TrainState
from scorejax.training.step import make_multi_step, make_train_step


def test_warmup_schedule_matches_score_sde():
  """score_sde: lr * min(step / warmup, 1) at the step count before the update."""
  schedule = optim.learning_rate_schedule(2e-4, 5000)
  for step in [0, 1, 2500, 4999, 5000, 10**6]:
    assert float(schedule(step)) == pytest.approx(2e-4 * min(step / 5000, 1.0), rel=1e-3, abs=1e-12)


def test_cosine_decay_after_warmup_matches_its_closed_form():
  """lr_decay='cosine': linear warm-up, then lr/2 (1 + cos(pi (step - warmup) / (decay_steps -
  warmup))) down to 0 at decay_steps (SGDR, Eq. 5, one period), and 0 after it."""
  lr, warmup, total = 2e-3, 100, 1000
  schedule = optim.learning_rate_schedule(lr, warmup, "cosine", total)
  for step in [0, 50, 100, 325, 550, 999, 1000, 5000]:
    if step < warmup:
      want = lr * step / warmup
    else:
      want = 0.5 * lr * (1 + np.cos(np.pi * min(step - warmup, total - warmup) / (total - warmup)))
    assert float(schedule(step)) == pytest.approx(want, rel=1e-4, abs=1e-9), step
  # From a config: decay_steps None is the run's length.
  import ml_collections
  config = ml_collections.ConfigDict(
      {"lr": lr, "warmup": warmup, "lr_decay": "cosine", "decay_steps": None})
  from_config = optim.schedule_from_config(config, total)
  assert [float(from_config(k)) for k in (100, 550, 1000)] == pytest.approx(
      [float(schedule(k)) for k in (100, 550, 1000)])
  longer = ml_collections.ConfigDict({**config.to_dict(), "decay_steps": 2000})
  assert float(optim.schedule_from_config(longer, total)(1000)) > 0.4 * lr


def test_cosine_decay_that_ends_before_its_warmup_names_the_fields():
  with pytest.raises(ValueError, match="decay_steps=50 must exceed config.optim.warmup=100"):
    optim.learning_rate_schedule(1e-3, 100, "cosine", 50)
  with pytest.raises(ValueError, match="lr_decay='step'"):
    optim.learning_rate_schedule(1e-3, 100, "step", 500)


def test_optimizer_clips_then_adam():
  tx = optim.make_optimizer(lr=0.1, warmup=0, grad_clip=1.0)
  params = {"w": jnp.zeros(3)}
  grads = {"w": jnp.array([30.0, 40.0, 0.0])}  # global norm 50 -> clipped to 1
  updates, _ = tx.update(grads, tx.init(params), params)
  # Adam's first step is lr * g / (|g| + eps) per coordinate, whatever the scale.
  np.testing.assert_allclose(updates["w"], [-0.1, -0.1, 0.0], atol=1e-6)
  ref = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(0.1))
  np.testing.assert_allclose(updates["w"], ref.update(grads, ref.init(params), params)[0]["w"], atol=1e-7)


def test_ema_update():
  out = optim.ema_update({"a": jnp.array(1.0)}, {"a": jnp.array(3.0)}, 0.999)
  assert float(out["a"]) == pytest.approx(0.999 * 1.0 + 0.001 * 3.0)


def _quadratic_loss(params, model_state, key, batch):
  noise = 0.01 * jax.random.normal(key, batch.shape)
  return jnp.mean(jnp.sum(jnp.square(batch + noise - params["w"][None]), axis=-1)), model_state


def test_train_step_updates_and_folds_step_into_key():
  tx = optim.make_optimizer(lr=0.05)
  state = TrainState.create({"w": jnp.zeros(2)}, tx)
  step = jax.jit(make_train_step(_quadratic_loss, tx, ema_rate=0.9))
  batch = jnp.ones((8, 2))
  key = jax.random.key(0)
  s1, m1 = step(state, batch, key)
  s2, m2 = step(s1, batch, key)
  assert int(s2.step) == 2
  assert float(m2["loss"]) < float(m1["loss"])
  np.testing.assert_allclose(s1.ema_params["w"], 0.1 * s1.params["w"], rtol=1e-6)
  # Same key, same step -> same result: the step is a pure function.
  np.testing.assert_array_equal(step(state, batch, key)[0].params["w"], s1.params["w"])
  # Several steps in one call equal calling them one by one; n_active stops early.
  multi = jax.jit(make_multi_step(make_train_step(_quadratic_loss, tx, ema_rate=0.9)))
  batches = jnp.stack([batch, batch, batch])
  sm, metrics = multi(state, batches, 2, key)
  assert int(sm.step) == 2
  np.testing.assert_allclose(sm.params["w"], s2.params["w"], rtol=1e-6)
  np.testing.assert_allclose(metrics["loss"], [float(m1["loss"]), float(m2["loss"]), 0.0], rtol=1e-6)
  s_one, _ = multi(state, batches, 1, key)
  np.testing.assert_allclose(s_one.params["w"], s1.params["w"], rtol=1e-6)


_DATA_PARALLEL_SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    import ml_collections
    from scorejax import losses, models, sde as sde_lib
    from scorejax.training import optim, parallel
    from scorejax.training.state import TrainState
    from scorejax.training.step import make_train_step
    assert jax.device_count() == 8, jax.devices()
    config = ml_collections.ConfigDict({"model": {"name": "mlp", "nf": 32, "num_layers": 2,
        "embedding_type": "positional", "scale_by_sigma": False, "dropout": 0.0}})
    model = models.get_model(config)
    sde = sde_lib.VPSDE()
    loss_fn = losses.get_sde_loss_fn(sde, model, train=True)
    tx = optim.make_optimizer(lr=1e-3, grad_clip=1.0)
    params = model.init(jax.random.key(0), jnp.zeros((1, 2)), jnp.ones((1,)), train=False)["params"]
    batch = np.asarray(jax.random.normal(jax.random.key(1), (64, 2)))
    results = []
    for devices in (jax.devices()[:1], jax.devices()):
      mesh = parallel.data_mesh(devices)
      rep = parallel.replicated(mesh)
      step = jax.jit(make_train_step(loss_fn, tx, 0.999),
                     in_shardings=(rep, parallel.batch_sharded(mesh), rep), out_shardings=(rep, rep))
      state = jax.device_put(TrainState.create(params, tx), rep)
      state, metrics = step(state, parallel.global_batch(batch, mesh), jax.random.key(2))
      jax.block_until_ready(metrics)
      results.append(jax.tree.map(np.asarray, state.params))
    num = sum(float(np.sum((a - b) ** 2)) for a, b in zip(jax.tree.leaves(results[0]), jax.tree.leaves(results[1])))
    den = sum(float(np.sum(a ** 2)) for a in jax.tree.leaves(results[0]))
    print("RELATIVE", (num / den) ** 0.5)
""")


@pytest.mark.slow  # a subprocess with 8 CPU devices; training's fast tests use the same mesh code
def test_data_parallel_step_equals_single_device():
  """One step with the global batch split over 8 fake CPU devices equals one device."""
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8 "
             "--xla_cpu_collective_call_terminate_timeout_seconds=60",
             JAX_PLATFORMS="cpu")
  out = subprocess.run([sys.executable, "-c", _DATA_PARALLEL_SCRIPT], env=env, capture_output=True,
                       text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  rel = float(out.stdout.split("RELATIVE")[1])
  assert rel <= 1e-5, rel


def test_checkpoint_falls_back_from_a_corrupt_latest(tmp_path, caplog):
  tx = optim.make_optimizer(lr=1e-3)
  state = TrainState.create({"w": jnp.arange(3.0)}, tx)
  manager = checkpoint.make_manager(str(tmp_path), snapshot_freq=10)
  for s in (10, 15, 20, 25):
    checkpoint.save(manager, s, state.replace(step=jnp.int32(s), params={"w": jnp.arange(3.0) + s}))
  assert sorted(manager.all_steps()) == [10, 20, 25]  # snapshots kept, preemption ones rotated
  for root, _, files in os.walk(tmp_path / "25"):
    for f in files:
      with open(os.path.join(root, f), "wb") as fh:
        fh.write(b"not a checkpoint")
  manager = checkpoint.make_manager(str(tmp_path), snapshot_freq=10)
  with caplog.at_level(logging.WARNING):
    restored, step = checkpoint.restore_latest(manager, checkpoint.abstract_like(state))
  assert step == 20 and int(restored.step) == 20
  np.testing.assert_array_equal(restored.params["w"], jnp.arange(3.0) + 20)
  assert "could not be restored" in caplog.text
  assert (tmp_path / "unreadable_step_25").is_dir()
  checkpoint.save(manager, 25, restored)  # the step can be saved again
  assert 25 in manager.all_steps()


def test_unusable_checkpoint_dir_is_reported(tmp_path):
  """A workdir that cannot hold directories (here: below a regular file) names the fix."""
  blocker = tmp_path / "a_file"
  blocker.write_text("")
  with pytest.raises(OSError, match="writable --workdir"):
    checkpoint.make_manager(str(blocker / "checkpoints"), snapshot_freq=10)


def test_full_disk_on_save_is_reported_and_loses_nothing(tmp_path, monkeypatch):
  tx = optim.make_optimizer(lr=1e-3)
  state = TrainState.create({"w": jnp.arange(3.0)}, tx)
  manager = checkpoint.make_manager(str(tmp_path), snapshot_freq=10)
  checkpoint.save(manager, 10, state.replace(step=jnp.int32(10)))

  def no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(manager, "save", no_space)
  with pytest.raises(OSError, match="No space left on device.*resumes from step 10") as info:
    checkpoint.save(manager, 20, state.replace(step=jnp.int32(20)))
  assert info.value.errno == errno.ENOSPC
  monkeypatch.undo()
  restored, step = checkpoint.restore_latest(manager, checkpoint.abstract_like(state))
  assert step == 10 and int(restored.step) == 10

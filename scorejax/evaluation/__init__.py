"""Evaluation of trained models.

`loop` (`--mode=eval`): resumable evaluation of a run's checkpoints (eval loss,
bits/dim, samples and FID/IS/KID); `bpd` (`--mode=likelihood`): exact bits/dim on
a dataset split; `reference_stats` (`--mode=fid_stats`): feature statistics of a
dataset split; `samples` (`--mode=sample`): sample grids and trajectories;
`metrics`: the FID Inception port, FID, KID, IS and the offline digits classifier;
`progress`: the progress bars of the long modes.
"""

"""What a run shows: metrics logs and pictures.

`writer`: JSONL metrics and TensorBoard events (`MetricsWriter`); `images`: PNG
sample grids, trajectory strips, 2-D scatter and score-field plots; `figures`:
those pictures for a model (2-D samples over the data with learned vs true score
fields, denoising trajectories).
"""

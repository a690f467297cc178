"""Data: TFDS/offline sources, score_sde's preprocessing and scalers, stateless pipelines.

```python
from scorejax import data
data_shape = data.get_data_shape(config)           # as the config states it (opens nothing)
num_train, data_shape = data.get_dataset_info(config)
for step, x in zip(range(start, n_iters), data.train_batches(config, start_step=start)):
  ...                        # x: this process's (B/P, H, W, C) float32 slice in [0, 1]
scaler = data.get_data_scaler(config)              # [0, 1] -> model range
inverse_scaler = data.get_data_inverse_scaler(config)
for x in data.eval_batches(config, "test"): ...    # one ordered pass, no flips
ev = data.eval_data(config)    # config bound: ev.batches(split, batch_size), ev.images(split)
```

Modules: `sources` (TFDS via `tfds.data_source`, scikit-learn digits),
`preprocess` (crop/resize, flip, dequantization, scalers), `pipeline` (index
arithmetic, prefetching, the config edge). See `pipeline`'s docstring for the
determinism and multi-process contract.
"""

from scorejax.data.pipeline import (
    DatasetInfo,
    EvalData,
    OFFLINE_DATASETS,
    TOY_NUM_EVAL,
    batch_stream,
    epoch_permutation,
    eval_batches,
    eval_data,
    eval_num_batches,
    example_indices,
    get_data_shape,
    get_dataset_info,
    make_image_batch_fn,
    make_toy_batch_fn,
    make_train_batch_fn,
    open_image_source,
    open_labels,
    prefetch_map,
    process_positions,
    toy_eval_pool,
    train_batches,
)
from scorejax.data.preprocess import (
    augment_example,
    central_crop,
    crop_resize,
    get_data_inverse_scaler,
    get_data_scaler,
    make_data_inverse_scaler,
    make_data_scaler,
    pad_or_resize,
    resize,
    resize_small,
)
from scorejax.data.sources import (
    IMAGE_DATASETS,
    DatasetNotPreparedError,
    TFDSDataset,
    TFDSImageSource,
    digits_labels,
    load_digits_images,
    open_digits_source,
    open_tfds_source,
    prepare_instructions,
)

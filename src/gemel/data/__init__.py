"""Data: sources (synthetic scenes, video files), ground truth, tasks, splits, base models.

The public API the other stages use:

- :func:`make_task` -- a query's task (targets, loss, predictions, per-frame score, chance);
- :func:`preprocess` -- the one transform from uint8 frames to model inputs;
- :func:`load_split` -- a query's inputs and targets on train / val / test (cached on disk);
- :func:`stream_frames` -- a source's test segment frame by frame, for the edge runtime;
- :func:`base_models` -- each query's trained base model and its accuracies.
"""

from gemel.data import detection_task  # noqa: F401  (registers the detection task)
from gemel.data.dataset import (
    SPLITS,
    QueryData,
    StreamFrame,
    load_split,
    query_task,
    split_range,
    stream_frames,
)
from gemel.data.labels import LabelFile, read_labels, write_labels
from gemel.data.preprocess import preprocess
from gemel.data.sources import cache_dir, load_clip
from gemel.data.synthetic import CLASSES, generate
from gemel.data.tasks import Task, make_task, register_task
from gemel.data.train import (
    BaseRecord,
    base_models,
    evaluate,
    model_answers,
    split_scores,
    train_base_model,
)
from gemel.data.truth import Clip, FrameTruth
from gemel.data.video import decode_video, iter_video

__all__ = [
    "CLASSES",
    "SPLITS",
    "BaseRecord",
    "Clip",
    "FrameTruth",
    "LabelFile",
    "QueryData",
    "StreamFrame",
    "Task",
    "base_models",
    "cache_dir",
    "decode_video",
    "evaluate",
    "generate",
    "iter_video",
    "load_clip",
    "load_split",
    "make_task",
    "model_answers",
    "preprocess",
    "query_task",
    "read_labels",
    "register_task",
    "split_range",
    "split_scores",
    "stream_frames",
    "train_base_model",
    "write_labels",
]

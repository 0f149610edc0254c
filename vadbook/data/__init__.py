"""Data: the video model, the synthetic benchmark, real-feature loaders, resampling and batching."""
from .annotations import UCF_CLASSES, XD_CLASSES, XD_CODES
from .batching import BalancedBatcher, pad_batch, resample, to_grid
from .fixtures import Fixture, make_fixture
from .glances import (glance_frames, glance_stats, perturb_video_glances, read_glance_snippets,
                      split_supervision, with_glances, write_glances)
from .gt import glance_frame_to_grid
from .real import RealVideo, load_features, load_ucf, load_xd
from .splits import merge_crops, stratified_split
from .synthetic import make_benchmark, statistics
from .video import FRAMES_PER_SNIPPET, NORMAL, Benchmark, Video

__all__ = [
    "Video", "Benchmark", "FRAMES_PER_SNIPPET", "NORMAL",
    "make_benchmark", "statistics",
    "BalancedBatcher", "pad_batch", "resample", "to_grid",
    "RealVideo", "load_features", "load_ucf", "load_xd", "merge_crops", "stratified_split",
    "Fixture", "make_fixture", "UCF_CLASSES", "XD_CLASSES", "XD_CODES", "glance_frame_to_grid",
    "glance_frames", "glance_stats", "perturb_video_glances", "read_glance_snippets",
    "split_supervision", "with_glances", "write_glances",
]

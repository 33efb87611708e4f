"""Video with FFmpeg, for the API (probing an upload) and the worker (`encode.video`): which
binaries to run (`binaries`), what a file holds (`probe`), the command line per format and
quality (`presets`), and one encode as a coroutine with progress and cancellation (`encode`).
No SQL here: the blob store moves the files, these modules only see local paths."""

from jobserver.video.binaries import Binaries, FFmpegMissing
from jobserver.video.encode import EncodeCancelled, EncodeFailed, EncodeResult, Progress, encode
from jobserver.video.probe import NotAVideo, VideoInfo, probe

__all__ = [
    "Binaries",
    "EncodeCancelled",
    "EncodeFailed",
    "EncodeResult",
    "FFmpegMissing",
    "NotAVideo",
    "Progress",
    "VideoInfo",
    "encode",
    "probe",
]

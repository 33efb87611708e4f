"""Video with FFmpeg, for the API (probing an upload) and the worker (`encode.video`): which
binaries to run (`binaries`), what a file holds (`probe.probe`), the command line per format and
quality (`presets`), and one encode as a coroutine with progress and cancellation
(`encode.encode`). No SQL here: the blob store moves the files, these modules see local paths.

Import from the modules (`from jobserver.video.probe import probe`): nothing is re-exported
here, so `jobserver.video.probe` and `jobserver.video.encode` stay the modules.
"""

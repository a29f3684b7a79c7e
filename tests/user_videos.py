"""The scenes video (examples/make_test_video.sh) re-encoded by Debian's
ffmpeg into the files users mostly have: H.264 in MP4, H.265 in Matroska,
H.264 in MPEG-TS, MPEG-4 Part 2 in AVI, VP9 in WebM, AV1 in Matroska. GStreamer must decode them with the
packages scripts/install-deps.sh names (plugins-good/-bad, gst-libav)."""
import os
import subprocess

# name: ffmpeg output options
FORMATS = {
    "h264.mp4": ["-c:v", "libx264", "-preset", "ultrafast"],
    "h265.mkv": ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"],
    "h264.ts": ["-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts"],
    "mpeg4.avi": ["-c:v", "mpeg4", "-q:v", "3"],
    "vp9.webm": ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8"],
    "av1.mkv": ["-c:v", "libsvtav1", "-preset", "12"],
}


def make_user_videos(source, folder):
    """Paths of `source` re-encoded into each of FORMATS, in `folder`."""
    paths = []
    for name, options in FORMATS.items():
        out = os.path.join(folder, "scenes-" + name)
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", source, "-pix_fmt", "yuv420p"]
                       + options + [out], check=True, capture_output=True, timeout=120)
        paths.append(out)
    return paths

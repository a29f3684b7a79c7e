"""ruclipmeta: ruclipfilter's results for Python applications (PyGObject).

The Python face of ruclipmeta.h, which defines the fields: the same readers,
by the same names, over RuClipMeta on a buffer, the "ruclip" element message
and the "ruclip-segment" message or event (tests/test_python_client.py reads
every field both ways on the same stream).

    import ruclipmeta
    result = ruclipmeta.buffer_get_result(buffer)
    if result and ruclipmeta.is_fresh(result):
        for label in ruclipmeta.labels(result):
            print(label.label, label.score)

Installed beside Python's other packages by `meson install`; from a source
tree, add gst-plugin/meta to sys.path.
"""
from typing import List, NamedTuple, Optional

META_NAME = "RuClipMeta"
RESULT_MESSAGE = "ruclip"
REGION_NAME = "ruclip-region"
SEGMENT_NAME = "ruclip-segment"
CLOCK_TIME_NONE = 2**64 - 1


class Label(NamedTuple):
    label: str
    score: float   # the result's scoring(): a softmax probability or a presence
    cosine: float
    probability: Optional[float] = None  # softmax over the labels (None from an older producer)
    presence: Optional[float] = None     # the label against the background alone


class Region(NamedTuple):
    id: int
    roi_type: str
    x: int
    y: int
    w: int
    h: int
    labels: List[Label]


class Segment(NamedTuple):
    is_start: bool
    label: str
    start_pts: int
    end_pts: int
    start_running_time: int
    end_running_time: int
    frames: int
    mean_score: float
    peak_score: float
    model: str
    scoring: str = "softmax"


def buffer_get_result(buffer):
    """The result structure on a Gst.Buffer, or None."""
    meta = buffer.get_custom_meta(META_NAME)
    return meta.get_structure() if meta else None


def is_result(structure) -> bool:
    """True for a "ruclip" result message's structure."""
    return structure is not None and structure.get_name() == RESULT_MESSAGE


def _array(s, field):
    if not s.has_field(field):
        return []
    v = s.get_value(field)
    return [v[i] for i in range(len(v))]


def _uint64(s, field, fallback):
    ok, v = s.get_uint64(field)
    return v if ok else fallback


def scoring(result) -> str:
    """What the scores are: "softmax" or "presence"."""
    return result.get_string("scoring") or "softmax"


def labels(result) -> List[Label]:
    """Best first: label, score (of scoring()), cosine, probability, presence."""
    names = _array(result, "labels")
    n = len(names)
    probabilities = _array(result, "probabilities") or [None] * n
    presences = _array(result, "presences") or [None] * n
    return [Label(*t) for t in zip(names, _array(result, "scores"), _array(result, "cosines"), probabilities,
                                   presences)]


def smoothed_scores(result) -> Optional[List[float]]:
    """Smoothed probabilities in the order of labels(); None without smoothing or segments."""
    return _array(result, "smoothed-scores") if result.has_field("smoothed-scores") else None


def is_fresh(result) -> bool:
    ok, fresh = result.get_boolean("fresh")
    return bool(ok and fresh)


def source_pts(result) -> int:
    return _uint64(result, "source-pts", CLOCK_TIME_NONE)


def frame(result) -> Optional[int]:
    ok, v = result.get_uint64("frame")
    return v if ok else None


def model(result) -> str:
    return result.get_string("model") or ""


def timestamp(result) -> int:
    """The message's PTS of the analyzed frame."""
    return _uint64(result, "timestamp", CLOCK_TIME_NONE)


def running_time(result) -> int:
    return _uint64(result, "running-time", CLOCK_TIME_NONE)


def embedding(result) -> List[float]:
    """The normalized image embedding; empty unless attach-embedding=true."""
    return _array(result, "embedding")


def regions(result) -> Optional[List[Region]]:
    """inference-region=roi-list: each classified region; None for a whole-frame result."""
    if not result.has_field("regions"):
        return None
    out = []
    for r in _array(result, "regions"):
        out.append(Region(r.get_value("id"), r.get_string("roi-type") or "", r.get_value("x"), r.get_value("y"),
                          r.get_value("w"), r.get_value("h"), labels(r)))
    return out


def segment(structure) -> Optional[Segment]:
    """A "ruclip-segment" message's or event's fields; None when it is not one."""
    if structure is None or structure.get_name() != SEGMENT_NAME:
        return None
    event = structure.get_string("event")
    if event not in ("start", "end"):
        return None
    return Segment(event == "start", structure.get_string("label") or "",
                   _uint64(structure, "start-pts", CLOCK_TIME_NONE), _uint64(structure, "end-pts", CLOCK_TIME_NONE),
                   _uint64(structure, "start-running-time", CLOCK_TIME_NONE),
                   _uint64(structure, "end-running-time", CLOCK_TIME_NONE), _uint64(structure, "frames", 0),
                   structure.get_double("mean-score")[1], structure.get_double("peak-score")[1],
                   structure.get_string("model") or "", structure.get_string("scoring") or "softmax")

"""The shipped model (models/ruclip-shapes-ru) for the Python tests that run it
through the element, and the one build where it can't run."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "ruclip-shapes-ru")


def skip_under_asan():
    """Under AddressSanitizer (scripts/sanitize.sh --all) the shipped model's
    SentencePiece tokenizer can't load beside LibTorch: its module needs
    RTLD_DEEPBIND, which ASan refuses (core/src/text/sentencepiece_tokenizer.cpp).
    Exits with meson's skip status there."""
    if "address" in os.environ.get("RUCLIP_SANITIZE", ""):
        print("SKIP: the shipped model's SentencePiece tokenizer can't load beside LibTorch under AddressSanitizer")
        sys.exit(77)

from sdelab.design.codec import Sample, Segment, label_texts, parse, parse_lenient, render
from sdelab.design.options import PRESETS, Design, get_design

__all__ = ["Design", "PRESETS", "Sample", "Segment", "get_design", "label_texts", "parse", "parse_lenient",
           "render"]

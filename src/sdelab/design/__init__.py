from sdelab.design.codec import Sample, Segment, answer_text, label_texts, parse, render
from sdelab.design.options import PRESETS, Design, expand_designs, get_design

__all__ = ["Design", "PRESETS", "Sample", "Segment", "answer_text", "expand_designs", "get_design", "label_texts",
           "parse", "render"]

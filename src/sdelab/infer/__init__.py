from sdelab.infer.generate import Generation, generate
from sdelab.infer.score import score_candidates

__all__ = ["Generation", "generate", "score_candidates"]

"""sdelab: compare ways of writing fine-tuning samples (and of modelling the task) for LLMs, ID and OOD."""
__version__ = "0.1.0"

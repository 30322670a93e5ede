"""The study schema: one YAML file says what to compare. Unknown keys are errors (with a 'did you mean')."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sdelab.errors import SdelabError
from sdelab.yamlio import load_yaml, validate


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RationaleSource(_Strict):
    """Where CoT / R-CoT rationales come from (study.rationales owns the cache and the teacher)."""
    column: str | None = Field(None, description="Data column holding a rationale per example.")
    teacher: str | None = Field(None, description="A model that writes missing rationales: catalog name, folder "
                                                  "or .gguf (run locally).")
    endpoint: str | None = Field(None, description="Or an OpenAI-compatible base URL (…/v1) whose `model` writes "
                                                   "them.")
    model: str | None = Field(None, description="The endpoint's model name.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the endpoint's key.")
    prompt: str | None = Field(None, description="Teacher prompt with {instruction}, {input}, {answer}.")
    max_new_tokens: int = Field(96, ge=8)
    batch_size: int = Field(16, ge=1)

    def teacher_id(self) -> str:
        return f"endpoint:{self.endpoint}:{self.model}" if self.endpoint else f"model:{self.teacher}"


class LoraSettings(_Strict):
    r: int = Field(8, ge=1, description="LoRA rank.")
    alpha: int = Field(16, ge=1, description="LoRA alpha (scaling = alpha / r).")
    dropout: float = Field(0.0, ge=0, lt=1, description="LoRA dropout (0 by default: faster, see docs).")
    targets: str | list[str] = Field("all-linear", description="Modules to adapt; 'all-linear' = every linear "
                                                               "layer but the output layer.")


class TrainSection(_Strict):
    epochs: float = Field(2.0, gt=0, description="Passes over the training set (fractions allowed).")
    lr: float = Field(2e-4, gt=0, description="Peak learning rate (linear warmup, linear decay).")
    batch_size: int = Field(8, ge=1, description="Examples per micro-batch.")
    grad_accum: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    warmup_ratio: float = Field(0.06, ge=0, le=1)
    weight_decay: float = Field(0.0, ge=0)
    max_grad_norm: float = Field(1.0, ge=0)
    max_length: int = Field(512, ge=16, description="Token budget per sample; the input is truncated, never "
                                                    "the target.")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field("auto", description="'auto': bf16 where the "
                                                                "device computes it natively, fp16 (with gradient "
                                                                "scaling) on a GPU that has only that, else fp32.")
    group_by_length: bool = Field(True, description="Length-grouped batches (less padding).")
    freeze_embeddings: bool = Field(False, description="Full fine-tuning only: keep the input embedding matrix "
                                    "frozen (an encoder's 250k-word vocabulary is most of its weights; its AdamW "
                                    "update dominates a step: 2.5x faster steps, docs/performance.md).")
    compile: Literal["auto", "on", "off"] = Field("auto", description="Regional torch.compile of the model's "
                                                  "repeated decoder blocks: 'auto' compiles cells of >= 30,000 "
                                                  "training tokens (1.5-1.8x faster steps after ~30 s of "
                                                  "compiling on 2 cores; docs/performance.md). Speed only: not "
                                                  "part of a cell's id; the manifest records the decision.")
    tracking: list[Literal["tensorboard", "mlflow"]] = Field(default_factory=list, description="Also log the "
                                                             "training curve to these trackers (pip install "
                                                             "'sdelab[tracking]'), in <cell>/tracking/.")
    lora: LoraSettings | None = Field(default_factory=LoraSettings, description="LoRA settings; null: full-parameter "
                                      "fine-tuning (every weight trained, fp32 weights and AdamW state).")


class EvalSet(_Strict):
    set: str = Field(description="A split of the study's task, or 'task:split' of another task (cross-task).")
    template: str | None = Field(None, description="Evaluate with this template wording (default: the design's).")
    demos: int | None = Field(None, ge=0, description="k in-context demonstrations in every test prompt, whatever "
                              "the design trained with (0: none; the design's demonstration options apply).")


class Decoding(_Strict):
    temperature: float = Field(0.7, gt=0, description="Sampling temperature.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling.")
    samples: int = Field(3, ge=1, description="Samples per item: each is scored as its own evaluation set "
                                              "('<set>~s<i>'), seeded, so the report shows their spread.")


class EvalSection(_Strict):
    sets: list[str | EvalSet] | None = Field(None, description="Evaluation sets: splits of the task, 'task:split' "
                                             "of other tasks, or {set, template} (default: every split but train).")
    size: int | None = Field(None, ge=1, description="At most this many examples per evaluation set (a fixed, "
                                                     "seed-independent subset, the same for every cell).")
    method: Literal["generate", "score"] = Field("generate", description="'generate': greedy decoding + parse; "
                                                 "'score': the label with the highest likelihood.")
    max_new_tokens: int | None = Field(None, ge=1, description="Generation budget; default: the longest "
                                       "response the design can write, plus 4 tokens.")
    batch_size: int = Field(32, ge=1)
    templates: list[str] = Field(default_factory=list, description="Evaluate every set again in each of these "
                                 "template wordings (instruction robustness: train on one wording, test on others).")
    scoring: Literal["sequence", "first_token"] = Field("sequence", description="method score: the sum of the "
                                                        "label's log-probabilities with end-of-sequence (sequence), "
                                                        "or its first token's alone (first_token, as the GenFT code).")
    decoding: Decoding | None = Field(None, description="Sampled decoding (default: greedy).")
    backend: Literal["builtin", "vllm"] = Field("builtin", description="vllm: generation and label scoring "
                                                "through vLLM (GPU only, pip install vllm; off by default; the "
                                                "built-in path is the tested one; docs/scaling.md). Speed only: "
                                                "not part of a cell's id.")


SAFE_NAME = re.compile(r"\w[\w.+=-]{0,99}")


class Study(_Strict):
    name: str = Field(description="Names the output folder and the report.")
    task: str | list[str] = Field(description="A built-in task name or a path to a task YAML (a list sweeps "
                                              "tasks).")
    model: str | list[str] = Field("smollm2-135m", description="Catalog name, local folder, .gguf file or hub id "
                                                               "(a list sweeps models).")
    sweep: dict[str, list[Any]] = Field(default_factory=dict, description="Training hyperparameters to sweep, "
                                        "e.g. {lr: [1e-4, 2e-4], epochs: [1, 2], lora.r: [4, 8]}.")
    designs: list[str | dict[str, Any]] = Field(default_factory=lambda: ["inst-first"])
    modeling: Literal["generative", "discriminative", "encoder"] | list[Literal["generative", "discriminative",
                                                                           "encoder"]] = Field(
        "generative", description="generative: the model writes the answer; discriminative: a classification head "
                                  "on the backbone's last token (closed label sets), LoRA on the backbone; encoder: "
                                  "the same head with every weight trained (the STM paper's BERT row, e.g. "
                                  "multilingual-e5-small). A list compares them.")
    reference: str | None = Field(None, description="The design others are compared with in the report "
                                                    "(default: the first listed).")
    untuned: list[int] = Field(default_factory=list, description="Also evaluate the untuned base model with k "
                               "in-context demonstrations for each k listed (0 = zero-shot), per design.")
    train_sizes: list[int | Literal["all"]] = Field(default_factory=lambda: [1000])
    seeds: list[int] = Field(default_factory=lambda: [0])
    prompt_format: Literal["chat", "plain"] = Field("chat", description="The model's chat template, or plain "
                                                                        "text.")
    system_prompt: str | None = Field(None, description="System turn for chat format (None: the template's "
                                                        "default).")
    rationales: RationaleSource | None = Field(None, description="Where CoT / R-CoT rationales come from.")
    train: TrainSection = Field(default_factory=TrainSection)
    eval: EvalSection = Field(default_factory=EvalSection)
    data_root: str | None = Field(None, description="Folder of the shared data sets (default: $SDELAB_DATA_ROOT "
                                                    "or ../shared/data).")
    output_dir: str | None = Field(None, description="Where run folders go (default: runs/<name>).")
    device: str | None = Field(None, description="Where every model runs: auto (CUDA, else Apple MPS, else CPU), "
                               "cpu, cuda, cuda:N or mps; $SDELAB_DEVICE overrides it. Not part of a cell's id "
                               "(the manifest records it).")

    @field_validator("device")
    @classmethod
    def _device(cls, v):
        from sdelab.models.device import DEVICE_NAMES
        if v is not None and not DEVICE_NAMES.fullmatch(v):
            raise ValueError(f"not a device: {v!r}; use auto, cpu, cuda, cuda:N or mps")
        return v

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v):
        # the name becomes a folder (runs/<name>) and the report's title: one plain word, nothing a path or
        # markdown could read as structure
        if not SAFE_NAME.fullmatch(v) or v.startswith("."):
            raise ValueError("a study name is 1-100 letters, digits and '_ . - + =', not starting with '.' "
                             f"(it names the folder runs/<name>); got {v!r}")
        return v

    @field_validator("designs")
    @classmethod
    def _nonempty(cls, v):
        if not v:
            raise ValueError("list at least one design")
        return v

    @field_validator("sweep")
    @classmethod
    def _sweep_keys(cls, v):
        for key, values in v.items():
            head, _, sub = key.partition(".")
            fields = LoraSettings.model_fields if head == "lora" else TrainSection.model_fields
            name = sub if head == "lora" else key
            if key == "compile":
                raise ValueError("cannot sweep 'compile': it changes speed only, so both values would be one cell "
                                 "(compare speeds with bench/train_levers.py)")
            if name not in fields or name == "lora":
                from sdelab.errors import did_you_mean
                known = [*(f for f in TrainSection.model_fields if f != "lora"),
                         *(f"lora.{f}" for f in LoraSettings.model_fields)]
                raise ValueError(f"cannot sweep '{key}'" + did_you_mean(key, known))
            if not isinstance(values, list) or not values:
                raise ValueError(f"sweep '{key}' needs a non-empty list of values")
            section = LoraSettings if head == "lora" else TrainSection
            seen = []
            for x in values:  # each value as the setting itself would take it
                try:
                    section.model_validate({name: x})
                except ValidationError as e:
                    raise ValueError(f"sweep '{key}': {x!r} is not a value of {key} ({e.errors()[0]['msg']})") from None
                if x in seen:
                    raise ValueError(f"sweep '{key}' lists {x!r} twice")
                seen.append(x)
        return v

    @field_validator("task", "model", "modeling")
    @classmethod
    def _axis(cls, v, info):
        if isinstance(v, list):
            if not v:
                raise ValueError(f"an empty list of {info.field_name}s runs nothing; give one or several")
            twice = next((x for i, x in enumerate(v) if x in v[:i]), None)
            if twice is not None:
                raise ValueError(f"{info.field_name} lists {twice!r} twice")
        return v

    @field_validator("untuned")
    @classmethod
    def _demos_count(cls, v):
        bad = [k for k in v if k < 0]
        if bad:
            raise ValueError(f"untuned lists numbers of in-context demonstrations, 0 or more; got {bad[0]}")
        return v

    @field_validator("seeds", "train_sizes")
    @classmethod
    def _nonempty_list(cls, v):
        if not v:
            raise ValueError("must not be empty")
        return v

    @field_validator("train_sizes")
    @classmethod
    def _positive_sizes(cls, v):
        bad = [n for n in v if isinstance(n, int) and n < 1]
        if bad:
            raise ValueError(f"a train size is a number of examples, at least 1 (or 'all'); got {bad[0]}")
        return v

    @model_validator(mode="after")
    def _lora_sweep(self):
        lora = [k for k in self.sweep if k.startswith("lora.")]
        modelings = self.modeling if isinstance(self.modeling, list) else [self.modeling]
        if lora and (self.train.lora is None or "encoder" in modelings):
            raise ValueError(f"cannot sweep {', '.join(lora)}: " + ("train.lora is null (full fine-tuning)" if
                             self.train.lora is None else "modeling: encoder trains every weight, without LoRA"))
        if self.train.freeze_embeddings and self.train.lora is not None and set(modelings) - {"encoder"}:
            raise ValueError("train.freeze_embeddings applies to full fine-tuning (train.lora: null, or modeling: "
                             "encoder); under LoRA the embeddings are frozen already")
        return self


def substudies(study: Study) -> list[tuple[dict[str, Any], Study]]:
    """A study with scalar task, model and training settings for every combination of the swept axes, each with
    the swept values ({} when nothing is swept)."""
    import itertools
    tasks = study.task if isinstance(study.task, list) else [study.task]
    models = study.model if isinstance(study.model, list) else [study.model]
    modelings = study.modeling if isinstance(study.modeling, list) else [study.modeling]
    keys = list(study.sweep)
    out = []
    for task, model, modeling, *values in itertools.product(tasks, models, modelings,
                                                            *(study.sweep[k] for k in keys)):
        train = study.train.model_dump()
        for k, v in zip(keys, values):
            if k.startswith("lora."):
                train["lora"][k[5:]] = v
            else:
                train[k] = v
        sub = study.model_copy(update={"task": task, "model": model, "modeling": modeling, "sweep": {},
                                       "train": TrainSection.model_validate(train)})
        axes = {**({"task": task} if len(tasks) > 1 else {}), **({"model": model} if len(models) > 1 else {}),
                **({"modeling": modeling} if len(modelings) > 1 else {}), **dict(zip(keys, values))}
        out.append((axes, sub))
    return out


def load_study(path: str | Path, overrides: dict[str, Any] | None = None) -> tuple[Study, Path]:
    """Validated study and the folder paths in it are resolved against (the working folder)."""
    path = Path(path)
    data, node = load_yaml(path)
    if not isinstance(data, dict):
        raise SdelabError("a study file must be a mapping of keys to values", path=path)
    for k, v in (overrides or {}).items():
        data[k] = v
    return validate(Study, data, path, node), path


def data_root(study: Study, cli: str | None = None) -> Path:
    return Path(cli or study.data_root or os.environ.get("SDELAB_DATA_ROOT") or "../shared/data").resolve()


def output_dir(study: Study, cli: str | None = None) -> Path:
    return Path(cli or study.output_dir or f"runs/{study.name}").resolve()
